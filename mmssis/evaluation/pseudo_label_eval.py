"""A semi detector's pseudo-labels against ground truth: quality metrics and calibration.

Both run the detector's one pseudo-label path (:meth:`SemiMaskDetector.pseudo_label`) on
test-style batches with ground-truth masks, bring the pseudo-masks into the ground truth's
frame with :func:`mmssis.structures.align_to_gt_frame` and match them with the same greedy
rule (:func:`mmssis.structures.match_instances`). Used by the pseudo-label quality and
calibration hooks and by ``tools/analysis_tools/pseudo_label_quality.py``.
"""
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import Tensor

from mmssis.structures import align_to_gt_frame
from mmssis.utils.misc import unwrap_model
from mmssis.utils.rank_seed import numpy_generator

from .calibration import match_detections
from .pseudo_label_quality import PseudoLabelQuality, gt_instance_masks

Records = Dict[str, np.ndarray]
_MODEL = object()


def _check_semi(model) -> None:
    if not hasattr(model, 'pseudo_label'):
        raise TypeError(f'{type(model).__name__} has no teacher pseudo-label path; wrap the '
                        'detector in a SemiMaskDetector')


def _in_gt_frame(pred: InstanceData, sample, frame) -> InstanceData:
    masks, (h, w) = align_to_gt_frame(pred.masks, sample, frame)
    return InstanceData(masks=masks, labels=pred.labels, scores=pred.scores), (h, w)


def mix_with_gt(mixer, preds: List[InstanceData], gts: List[InstanceData],
                rng: np.random.Generator) -> List[Tuple[InstanceData, InstanceData]]:
    """Pseudo-labels and ground truth of a batch after the same ARP mixing.

    The mixer pastes pseudo-instances (the pixels under their masks) between images, so
    the objects the student then sees are the ground-truth objects under the pasted and
    the remaining pixels. The batch's images are replaced by maps of ground-truth object
    ids (one channel, 0 = background) and mixed with the pseudo-labels by ``mixer``: its
    draws depend on the masks only, and an id moves with its pixel, so the mixed id maps
    are the ground truth of the mixed images. An id map holds one object per pixel: where
    GT masks of an image overlap, the later object keeps the shared pixels (COCO-style
    annotations of visible parts do not overlap). A batch of fewer than 2 images (an odd
    last batch) cannot be mixed (ARP pairs images; training refuses such layouts before
    iteration 0) and comes back unmixed.

    Args:
        mixer: An ``ARPInstanceMixer`` (called as ``mixer(inputs, samples, rng=rng)``).
        preds: ``B`` pseudo-labels in their images' GT frames (``masks`` (N, H_b, W_b)
            bool, ``labels``, ``scores``).
        gts: ``B`` ground truths in the same frames (``masks`` (G, H_b, W_b), ``labels``).
        rng: The mixing draws.

    Returns:
        ``B`` pairs ``(pseudo-labels, ground truth)`` after mixing, in the same frames
        (images the mixer left alone come back unchanged).
    """
    if len(gts) < 2:
        return list(zip(preds, gts))
    shapes = [tuple(int(v) for v in g.masks.shape[-2:]) for g in gts]
    h_pad, w_pad = (max(s[k] for s in shapes) for k in (0, 1))
    ids = torch.zeros((len(gts), 1, h_pad, w_pad), dtype=torch.float64)
    labels: List[Tensor] = []
    samples = []
    offset = 0  # ids are unique over the batch: image n's objects follow image n-1's
    for n, (pred, gt, (h, w)) in enumerate(zip(preds, gts, shapes)):
        masks = gt.masks.cpu().bool()
        for g in range(len(gt)):
            ids[n, 0, :h, :w][masks[g]] = offset + g + 1
        offset += len(gt)
        labels.append(gt.labels.cpu())
        pm = torch.zeros((len(pred), h_pad, w_pad), dtype=torch.bool)
        pm[:, :h, :w] = pred.masks.cpu().bool()
        sample = DetDataSample(metainfo=dict(img_shape=(h, w)))
        sample.gt_instances = InstanceData(masks=pm, labels=pred.labels.cpu(),
                                           scores=pred.scores.cpu())
        samples.append(sample)
    all_labels = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
    mixed = mixer(ids, samples, rng=rng)
    out = []
    for n, (h, w) in enumerate(shapes):
        id_map = mixed.inputs[n, 0, :h, :w].long()
        present = torch.unique(id_map)
        present = present[present > 0]
        gt_masks = id_map[None] == present[:, None, None]
        inst = mixed.samples[n].gt_instances
        out.append((InstanceData(masks=inst.masks[:, :h, :w], labels=inst.labels,
                                 scores=inst.scores),
                    InstanceData(masks=gt_masks, labels=all_labels[present - 1])))
    return out


@torch.no_grad()
def evaluate_pseudo_labels(model, dataloader: Iterable, max_images: Optional[int] = None,
                           refiner=_MODEL, iou_thr: float = 0.5, class_aware: bool = True,
                           progress: bool = False, sam_benefit=None,
                           mixer=None) -> Dict[str, float]:
    """Scores the teacher's (and SAM-refined, and ARP-mixed) pseudo-masks against GT masks.

    Args:
        model: A ``SemiMaskDetector`` (possibly wrapped in DDP).
        dataloader: Yields mmdet test-style batches (``inputs``: uint8 images,
            ``data_samples`` with ``gt_instances.masks``).
        max_images: Stop after this many images (per rank); None: all.
        refiner: A ``SamMaskRefiner``; default: the model's ``sam_refiner``
            (None: teacher only).
        iou_thr: Matching IoU threshold.
        class_aware: Class-aware matching.
        progress: Show an mmengine ``ProgressBar``.
        sam_benefit: A :class:`mmssis.evaluation.SamBenefit` to fill from the same
            pseudo-labels (per-class teacher vs refined IoU pairs; those of all ranks,
            gathered like the quality metrics), or None.
        mixer: An ``ARPInstanceMixer`` or None. With one, the last stage's pseudo-labels
            (refined, else the teacher's) of each batch are mixed as the student would
            receive them and scored against the equally mixed GT (:func:`mix_with_gt`;
            batch ``k`` draws from the mixer's seed, ``'arp-eval'`` and ``k``).

    Returns:
        ``teacher_<metric>`` (and ``refined_<metric>`` plus ``miou_gain`` =
        ``refined_miou - teacher_miou`` with a refiner; ``mixed_<metric>`` with a mixer)
        for every metric of :meth:`PseudoLabelQuality.compute`.
    """
    model = unwrap_model(model)
    _check_semi(model)
    if refiner is _MODEL:
        refiner = model.sam_refiner
    stats = {'teacher': PseudoLabelQuality(iou_thr, class_aware)}
    if refiner is not None:
        stats['refined'] = PseudoLabelQuality(iou_thr, class_aware)
    if mixer is not None:
        stats['mixed'] = PseudoLabelQuality(iou_thr, class_aware)
    was_training = model.training
    model.eval()
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        total = len(dataloader.dataset) if hasattr(dataloader, 'dataset') else 0
        bar = ProgressBar(min(total, max_images or total))
    seen = 0
    try:
        for batch_index, batch in enumerate(dataloader):
            if max_images is not None and seen >= max_images:
                break
            data = model.data_preprocessor(batch, False)
            inputs, samples = data['inputs'], data['data_samples']
            if max_images is not None:
                keep = max_images - seen
                inputs, samples = inputs[:keep], samples[:keep]
            gts = [gt_instance_masks(s.gt_instances) for s in samples]
            record = model.pseudo_label(inputs, samples, refine=refiner or False)
            # (pseudo-labels, GT) of each image at the path's last stage: what ARP mixes.
            last: List[Tuple[InstanceData, InstanceData]] = []
            for i, sample in enumerate(samples):
                frame, gt = gts[i]
                stages = [('teacher', record.kept[i])]
                if record.refined is not None:
                    stages.append(('refined', record.refined[i]))
                for name, pred in stages:
                    pred_in, (h, w) = _in_gt_frame(pred, sample, frame)
                    gt_in = InstanceData(masks=gt.masks[:, :h, :w], labels=gt.labels)
                    stats[name].update(pred_in, gt_in)
                    if name == stages[-1][0]:
                        last.append((pred_in, gt_in))
                if sam_benefit is not None and record.refined is not None:
                    _add_pairs(sam_benefit, record, i, sample, frame, gt)
                if bar is not None:
                    bar.update()
            if mixer is not None:
                rng = numpy_generator(mixer.seed, 'arp-eval', batch_index, step=0)
                for pred, gt_in in mix_with_gt(mixer, *zip(*last), rng=rng):
                    stats['mixed'].update(pred, gt_in)
            seen += len(samples)
    finally:
        model.train(was_training)
    out: Dict[str, float] = {}
    for name, acc in stats.items():
        acc.all_reduce()
        out.update({f'{name}_{k}': v for k, v in acc.compute().items()})
    if sam_benefit is not None:
        sam_benefit.gather()
    if refiner is not None:
        out['miou_gain'] = out['refined_miou'] - out['teacher_miou']
        out['best_iou_gain'] = out['refined_best_iou'] - out['teacher_best_iou']
    return out


@torch.no_grad()
def calibration_records(model, data: dict, iou_thr: float = 0.5,
                        min_score: float = 0.0) -> Records:
    """Teacher candidates of one batch with their correctness against the ground truth.

    The candidates are the detector's own (:meth:`SemiMaskDetector.pseudo_label`, no SAM),
    put through its mask filter (``mask_thr``, ``min_mask_area``) but not its score
    threshold, which is what is being calibrated.

    Args:
        model: The bare semi-supervised detector.
        data: A dataloader batch (``inputs`` list, ``data_samples`` with ``gt_instances``
            holding ``labels`` and ``masks``).
        iou_thr: Mask IoU of a correct detection.
        min_score: Candidates scoring below this are ignored (e.g. the many near-zero
            Mask2Former queries).

    Returns:
        ``scores`` (K,) float64, ``labels`` (K,) int64 and ``correct`` (K,) bool over all
        kept candidates of the batch.
    """
    _check_semi(model)
    batch = model.data_preprocessor(data, False)
    samples = batch['data_samples']
    for sample in samples:
        if 'masks' not in sample.gt_instances:
            raise KeyError('ConfidenceCalibrationHook needs ground-truth masks: load them '
                           'in the calibration pipeline (LoadAnnotations with_mask=True)')
    gts = [gt_instance_masks(s.gt_instances) for s in samples]
    record = model.pseudo_label(batch['inputs'], samples, refine=False)
    scores, labels, correct = [], [], []
    for cand, sample, (frame, gt) in zip(record.candidates, samples, gts):
        inst = model.filter_pseudo_instances(cand[cand.scores >= min_score], by_score=False)
        pred, (h, w) = _in_gt_frame(inst, sample, frame)
        flags = match_detections(pred.masks.cpu(), inst.labels, inst.scores,
                                 gt.masks[:, :h, :w], gt.labels, iou_thr)
        scores.append(inst.scores.float().cpu().numpy())
        labels.append(inst.labels.cpu().numpy().astype(np.int64))
        correct.append(flags)
    return dict(scores=np.concatenate(scores or [np.zeros(0)]).astype(np.float64),
                labels=np.concatenate(labels or [np.zeros(0, np.int64)]),
                correct=np.concatenate(correct or [np.zeros(0, bool)]))


def _add_pairs(acc, record, i: int, sample, frame, gt: InstanceData) -> None:
    """Teacher / refined pairs of image ``i`` of ``record``, in the GT frame, into ``acc``."""
    teacher = record.kept[i][record.refined_rows[i]]
    t_masks, (h, w) = align_to_gt_frame(teacher.masks, sample, frame)
    r_masks, _ = align_to_gt_frame(record.refined[i].masks, sample, frame)
    acc.update(t_masks, r_masks, teacher.labels, teacher.scores, gt.masks[:, :h, :w],
               gt.labels)


@torch.no_grad()
def evaluate_sam_benefit(model, dataloader: Iterable, refiner=_MODEL,
                         max_images: Optional[int] = None, iou_thr: float = 0.5
                         ) -> Dict[str, np.ndarray]:
    """Per-class teacher vs SAM-refined mask IoU on images with GT
    (:class:`mmssis.evaluation.SamBenefit`): does this SAM help on this data?

    The pairs are the detector's own kept pseudo-instances and their refinements, from one
    :meth:`SemiMaskDetector.pseudo_label` call per batch (``record.kept[i][rows]`` with
    ``record.refined[i]``), both brought into the GT frame.

    Args:
        model: A ``SemiMaskDetector`` (possibly wrapped).
        dataloader: Test-style batches with GT masks.
        refiner: A ``SamMaskRefiner``; default: the model's. Its policy is lifted
            (:meth:`~mmssis.sam.SamMaskRefiner.ungated`): every kept
            pseudo-instance is refined, as the question is what SAM would do.
        max_images: Stop after this many images; None: all.
        iou_thr: IoU of a teacher mask's GT match.

    Returns:
        The :meth:`SamBenefit.compute` table (pairs of all ranks).

    Raises:
        ValueError: There is no refiner.
    """
    from mmssis.evaluation.sam_benefit import SamBenefit
    model = unwrap_model(model)
    _check_semi(model)
    if refiner is _MODEL:
        refiner = model.sam_refiner
    if refiner is None:
        raise ValueError('evaluate_sam_benefit needs a SAM refiner (the model has none)')
    acc = SamBenefit(model.num_classes, iou_thr)
    # The pairs of the quality evaluation's own pass (one loop over the data). Its point
    # draws are derived per step and image, so they cannot shift the training draws.
    evaluate_pseudo_labels(model, dataloader, max_images=max_images,
                           refiner=refiner.ungated(), iou_thr=iou_thr, sam_benefit=acc)
    return acc.compute()
