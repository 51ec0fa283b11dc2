"""How good are pseudo-labels? Precision / recall / mask IoU of pseudo-masks against GT.

Matching (per image): predictions are visited in decreasing score order and each takes the
still-unmatched GT instance with the highest mask IoU, if that IoU is ``>= iou_thr``
(0.5) -- greedy, like COCO's evaluation at a single threshold and the same rule as
:func:`mmssis.evaluation.calibration.match_detections` (which only returns TP flags; here
the matched IoUs are needed too). With ``class_aware`` only pairs with equal labels can
match. From the matches (micro-averaged over all images):

* ``precision`` = matched predictions / predictions (0 when there are no predictions but
  there is GT, 1 when there is neither);
* ``recall`` = matched GT / GT (1 when there is no GT);
* ``miou`` = mean mask IoU of the matched pairs (0 without matches);
* ``best_iou`` = mean over *all* predictions of the IoU with their best GT (any GT,
  same class when ``class_aware``), i.e. mask quality including false positives;
* ``num_pred``, ``num_gt``, ``num_tp``, ``num_images``.

:func:`evaluate_pseudo_labels` runs a :class:`~mmssis.models.SemiMaskDetector` teacher
through the detector's own pseudo-label path (teacher prediction -> score/mask filter ->
optional SAM refinement) on images with GT masks and scores both the teacher's and the
refined pseudo-masks. It is shared by :class:`mmssis.engine.hooks.PseudoLabelQualityHook`
and ``tools/analysis_tools/pseudo_label_quality.py``.

Frames: pseudo-masks live at the teacher view's ``img_shape``. GT masks are at
``img_shape`` when the pipeline loads annotations before ``Resize``, and at the original
size (``ori_shape``) when it loads them after (as mmdet's / mmssis' test pipelines do).
In the latter case the pseudo-masks are warped into the original frame with the inverse
of the view's homography (``homography_matrix`` if packed, else built from
``scale_factor``), so metrics are always computed at the GT's resolution.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.structures import InstanceData
from torch import Tensor

from .calibration import mask_iou

__all__ = [
    'mask_iou_matrix', 'ImageMatch', 'match_instances', 'PseudoLabelQuality',
    'gt_instance_masks', 'align_to_gt_frame', 'evaluate_pseudo_labels'
]


# ----------------------------------------------------------------------------------------
# metrics on masks
def mask_iou_matrix(pred: Tensor, gt: Tensor) -> Tensor:
    """Pairwise mask IoU.

    Args:
        pred: ``(P, H, W)`` bool (or 0/1) masks.
        gt: ``(G, H, W)`` masks in the same frame.

    Returns:
        ``(P, G)`` float32 IoU (0 for two empty masks).
    """
    if pred.shape[1:] != gt.shape[1:]:
        raise ValueError(f'masks in different frames: pred {tuple(pred.shape[1:])}, '
                         f'gt {tuple(gt.shape[1:])}')
    return mask_iou(pred, gt.to(pred.device))


@dataclass
class ImageMatch:
    """Matching result of one image.

    Attributes:
        num_pred: Number of predicted instances ``P``.
        num_gt: Number of GT instances ``G``.
        matched_ious: ``(TP,)`` IoUs of the matched pairs.
        best_ious: ``(P,)`` best IoU of each prediction with any (allowed) GT.
        pred_to_gt: ``(P,)`` index of the matched GT, ``-1`` if unmatched.
    """

    num_pred: int
    num_gt: int
    matched_ious: np.ndarray
    best_ious: np.ndarray
    pred_to_gt: np.ndarray

    @property
    def num_tp(self) -> int:
        return int(self.matched_ious.size)


def match_instances(pred_masks: Tensor, gt_masks: Tensor,
                    pred_labels: Optional[Tensor] = None, gt_labels: Optional[Tensor] = None,
                    pred_scores: Optional[Tensor] = None, iou_thr: float = 0.5,
                    class_aware: bool = True) -> ImageMatch:
    """Greedy one-to-one matching of predicted to GT masks of one image.

    Args:
        pred_masks: ``(P, H, W)`` predicted masks.
        gt_masks: ``(G, H, W)`` GT masks in the same frame.
        pred_labels: ``(P,)`` class indices (needed when ``class_aware``).
        gt_labels: ``(G,)`` class indices (needed when ``class_aware``).
        pred_scores: ``(P,)`` confidences; predictions are matched in decreasing score
            order (input order when None).
        iou_thr: Minimum IoU of a match.
        class_aware: Only match (and score ``best_ious`` against) GT of the same class.

    Returns:
        An :class:`ImageMatch`.
    """
    num_pred, num_gt = int(pred_masks.shape[0]), int(gt_masks.shape[0])
    pred_to_gt = np.full(num_pred, -1, dtype=np.int64)
    if num_pred == 0 or num_gt == 0:
        return ImageMatch(num_pred, num_gt, np.zeros(0, np.float32),
                          np.zeros(num_pred, np.float32), pred_to_gt)
    iou = mask_iou_matrix(pred_masks, gt_masks).cpu()
    # Pairs that may match: all, or same-class only (-1 keeps other classes out even at
    # iou_thr <= 0; best_ious reports 0 for them).
    allowed = torch.ones_like(iou, dtype=torch.bool)
    if class_aware:
        if pred_labels is None or gt_labels is None:
            raise ValueError('class_aware matching needs pred_labels and gt_labels')
        allowed = pred_labels.cpu().reshape(-1, 1) == gt_labels.cpu().reshape(1, -1)
        iou = torch.where(allowed, iou, torch.zeros_like(iou))
    iou_np = iou.numpy()
    match_iou = np.where(allowed.numpy(), iou_np, -1.0)
    order = (np.argsort(-pred_scores.detach().cpu().numpy(), kind='stable')
             if pred_scores is not None else np.arange(num_pred))
    gt_free = np.ones(num_gt, dtype=bool)
    matched = []
    for p in order:
        cand = np.where(gt_free, match_iou[p], -1.0)
        g = int(cand.argmax())
        if cand[g] >= iou_thr:
            gt_free[g] = False
            pred_to_gt[p] = g
            matched.append(iou_np[p, g])
    return ImageMatch(num_pred, num_gt, np.asarray(matched, np.float32),
                      iou_np.max(axis=1).astype(np.float32), pred_to_gt)


@dataclass
class PseudoLabelQuality:
    """Accumulates :class:`ImageMatch` results; :meth:`compute` gives the metrics.

    The state is five sums and three counts, so ranks can be merged with
    :meth:`all_reduce` (a no-op outside distributed runs).
    """

    iou_thr: float = 0.5
    class_aware: bool = True
    num_images: int = 0
    num_pred: int = 0
    num_gt: int = 0
    num_tp: int = 0
    sum_matched_iou: float = 0.0
    sum_best_iou: float = 0.0
    _KEYS: ClassVar[Tuple[str, ...]] = ('num_images', 'num_pred', 'num_gt', 'num_tp',
                                        'sum_matched_iou', 'sum_best_iou')

    def add(self, match: ImageMatch) -> None:
        self.num_images += 1
        self.num_pred += match.num_pred
        self.num_gt += match.num_gt
        self.num_tp += match.num_tp
        self.sum_matched_iou += float(match.matched_ious.sum())
        self.sum_best_iou += float(match.best_ious.sum())

    def update(self, pred: InstanceData, gt: InstanceData) -> ImageMatch:
        """Match and accumulate one image.

        Args:
            pred: ``masks`` (P, H, W) bool tensor (or ``BitmapMasks``), ``labels``,
                optional ``scores``.
            gt: ``masks`` (G, H, W) in the same frame, ``labels``.

        Returns:
            The image's :class:`ImageMatch`.
        """
        match = match_instances(_mask_tensor(pred.masks), _mask_tensor(gt.masks),
                                pred.get('labels'), gt.get('labels'), pred.get('scores'),
                                self.iou_thr, self.class_aware)
        self.add(match)
        return match

    def all_reduce(self) -> None:
        """Sum the state over distributed ranks (in place)."""
        from mmengine import dist
        if dist.get_world_size() == 1:
            return
        t = torch.tensor([float(getattr(self, k)) for k in self._KEYS], dtype=torch.float64)
        dist.all_reduce(t)
        for k, v in zip(self._KEYS, t.tolist()):
            setattr(self, k, type(getattr(self, k))(v))

    def compute(self) -> Dict[str, float]:
        """Micro-averaged metrics (see the module docstring for the conventions)."""
        if self.num_pred:
            precision = self.num_tp / self.num_pred
        else:
            precision = 0.0 if self.num_gt else 1.0
        recall = self.num_tp / self.num_gt if self.num_gt else 1.0
        return dict(
            precision=precision, recall=recall,
            miou=self.sum_matched_iou / self.num_tp if self.num_tp else 0.0,
            best_iou=self.sum_best_iou / self.num_pred if self.num_pred else 0.0,
            num_pred=float(self.num_pred), num_gt=float(self.num_gt),
            num_tp=float(self.num_tp), num_images=float(self.num_images))


def _mask_tensor(masks) -> Tensor:
    """``BitmapMasks`` / array / tensor -> ``(N, H, W)`` bool tensor."""
    if isinstance(masks, Tensor):
        return masks.bool()
    if hasattr(masks, 'to_ndarray'):  # BitmapMasks / PolygonMasks
        return torch.from_numpy(np.ascontiguousarray(masks.to_ndarray())).bool()
    return torch.as_tensor(np.asarray(masks)).bool()


# ----------------------------------------------------------------------------------------
# frames
def view_homography(sample) -> Tensor:
    """``original image -> view`` homography of a sample, float64 ``(3, 3)``.

    The one implementation is :func:`mmssis.models.utils.mask_projection.sample_homography`
    (packed ``homography_matrix``, or exact for an untransformed / plainly resized view;
    any other transformed view without it is an error).
    """
    from mmssis.models.utils.mask_projection import sample_homography
    return sample_homography(sample)


def gt_instance_masks(gt: InstanceData) -> Tuple[Tuple[int, int], InstanceData]:
    """The GT frame ``(H, W)`` and the GT as ``masks`` (G, H, W) bool + ``labels``."""
    masks = gt.masks
    if hasattr(masks, 'height'):
        frame = (int(masks.height), int(masks.width))
    else:
        frame = tuple(int(s) for s in masks.shape[-2:])
    return frame, InstanceData(masks=_mask_tensor(masks), labels=gt.labels)


def align_to_gt_frame(pred: InstanceData, sample, gt_frame: Tuple[int, int]) -> InstanceData:
    """Bring pseudo-instances (``masks`` (P, h, w) at the view's ``img_shape``) into the
    GT frame.

    Args:
        pred: Pseudo-instances with bool ``masks`` at ``img_shape`` (``labels``,
            ``scores`` are carried over).
        sample: The view's data sample (``img_shape``, ``ori_shape``, homography or
            ``scale_factor``).
        gt_frame: ``(H, W)`` of the GT masks: ``img_shape`` or ``ori_shape``.

    Returns:
        ``InstanceData`` with bool ``masks`` (P, H, W), ``labels``, ``scores``.

    Raises:
        ValueError: ``gt_frame`` is neither the view's ``img_shape`` nor ``ori_shape``.
    """
    from mmssis.models.utils.mask_projection import project_masks
    meta = sample.metainfo
    img_shape = tuple(int(s) for s in meta['img_shape'][:2])
    masks = pred.masks.bool()
    out = InstanceData(labels=pred.labels, scores=pred.scores)
    if tuple(gt_frame) == img_shape and tuple(masks.shape[-2:]) == img_shape:
        out.masks = masks
        return out
    ori_shape = tuple(int(s) for s in meta.get('ori_shape', img_shape)[:2])
    if tuple(gt_frame) != ori_shape:
        raise ValueError(f'GT masks are {gt_frame}, neither the view shape {img_shape} '
                         f'nor the original shape {ori_shape}')
    masks = masks[:, :img_shape[0], :img_shape[1]]
    to_original = torch.linalg.inv(view_homography(sample))
    out.masks = project_masks(masks, to_original, ori_shape, mode='bilinear').bool()
    return out


# ----------------------------------------------------------------------------------------
# the detector's pseudo-label path
def _unwrap(model):
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def _ensure_homography(samples: Sequence) -> None:
    """Give samples without ``homography_matrix`` one from ``scale_factor`` (so that
    SAM refinement in the original frame maps masks correctly)."""
    for s in samples:
        if s.metainfo.get('homography_matrix') is None:
            s.set_metainfo(dict(
                homography_matrix=view_homography(s).numpy().astype(np.float32)))


@torch.no_grad()
def pseudo_instances_with_refinement(model, inputs: Tensor, samples: Sequence,
                                     refiner=None
                                     ) -> Tuple[List[InstanceData], Optional[List[InstanceData]]]:
    """Teacher pseudo-instances of a batch, before and after SAM refinement.

    Mirrors ``SemiMaskDetector.get_pseudo_instances`` but returns both stages.

    Args:
        model: A ``SemiMaskDetector`` (``teacher``, ``filter_pseudo_instances``).
        inputs: ``(B, 3, H_pad, W_pad)`` normalised images.
        samples: Their data samples (``img_shape``, ``img_path`` ...).
        refiner: A ``PseudoLabelSamRefiner`` (``refine_batch``) or None (no refinement).

    Returns:
        ``(teacher, refined)``: per image ``InstanceData`` with bool ``masks`` (N, h, w)
        at ``img_shape``, ``labels``, ``scores``; ``refined`` is None without refiner.
    """
    from mmssis.models.detectors.pseudo_labels import teacher_pseudo_instances
    candidates = teacher_pseudo_instances(model.teacher, inputs, samples)
    teacher = [model.filter_pseudo_instances(inst) for inst in candidates]
    if refiner is None:
        return teacher, None
    _ensure_homography(samples)
    refined, _ = refiner.refine_batch(inputs, samples, teacher, model.data_preprocessor)
    # The detector drops instances SAM shrank below min_mask_area; do the same.
    drop = getattr(model, '_drop_small', None)
    if drop is not None:
        refined = [drop(inst) for inst in refined]
    return teacher, refined


_UNSET = object()


@torch.no_grad()
def evaluate_pseudo_labels(model, dataloader: Iterable, max_images: Optional[int] = None,
                           refiner=_UNSET, iou_thr: float = 0.5, class_aware: bool = True,
                           progress: bool = False) -> Dict[str, float]:
    """Scores the teacher's (and SAM-refined) pseudo-masks against GT masks.

    Args:
        model: A ``SemiMaskDetector`` (possibly wrapped in DDP).
        dataloader: Yields mmdet test-style batches (``inputs``: uint8 images,
            ``data_samples`` with ``gt_instances.masks``).
        max_images: Stop after this many images (per rank); None: all.
        refiner: A ``PseudoLabelSamRefiner``; default: the model's ``sam_refiner``
            (None: teacher only).
        iou_thr: Matching IoU threshold.
        class_aware: Class-aware matching.
        progress: Show an mmengine ``ProgressBar``.

    Returns:
        ``teacher_<metric>`` (and ``refined_<metric>`` plus ``miou_gain`` =
        ``refined_miou - teacher_miou`` with a refiner) for every metric of
        :meth:`PseudoLabelQuality.compute`.
    """
    model = _unwrap(model)
    if not (hasattr(model, 'teacher') and hasattr(model, 'filter_pseudo_instances')):
        raise TypeError(f'{type(model).__name__} has no teacher pseudo-label path; wrap the '
                        'detector in a SemiMaskDetector')
    if refiner is _UNSET:
        refiner = getattr(model, 'sam_refiner', None)
    stats = {'teacher': PseudoLabelQuality(iou_thr, class_aware)}
    if refiner is not None:
        stats['refined'] = PseudoLabelQuality(iou_thr, class_aware)
    was_training = model.training
    model.eval()
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        total = len(dataloader.dataset) if hasattr(dataloader, 'dataset') else 0
        bar = ProgressBar(min(total, max_images or total))
    seen = 0
    try:
        for batch in dataloader:
            if max_images is not None and seen >= max_images:
                break
            data = model.data_preprocessor(batch, False)
            inputs, samples = data['inputs'], data['data_samples']
            if max_images is not None:
                keep = max_images - seen
                inputs, samples = inputs[:keep], samples[:keep]
            gts = [gt_instance_masks(s.gt_instances) for s in samples]
            teacher, refined = pseudo_instances_with_refinement(model, inputs, samples, refiner)
            for i, sample in enumerate(samples):
                frame, gt = gts[i]
                stats['teacher'].update(align_to_gt_frame(teacher[i], sample, frame), gt)
                if refined is not None:
                    stats['refined'].update(align_to_gt_frame(refined[i], sample, frame), gt)
                if bar is not None:
                    bar.update()
            seen += len(samples)
    finally:
        model.train(was_training)
    out: Dict[str, float] = {}
    for name, acc in stats.items():
        acc.all_reduce()
        out.update({f'{name}_{k}': v for k, v in acc.compute().items()})
    if refiner is not None:
        out['miou_gain'] = out['refined_miou'] - out['teacher_miou']
        out['best_iou_gain'] = out['refined_best_iou'] - out['teacher_best_iou']
    return out


def format_quality_table(metrics: Dict[str, float]) -> str:
    """A small text table (rows teacher/refined; precision, recall, mIoU ...)."""
    cols = ('precision', 'recall', 'miou', 'best_iou', 'num_pred', 'num_gt', 'num_tp')
    rows = [n for n in ('teacher', 'refined') if f'{n}_precision' in metrics]
    lines = ['stage    ' + ''.join(f'{c:>11}' for c in cols)]
    for r in rows:
        vals = []
        for c in cols:
            v = metrics[f'{r}_{c}']
            vals.append(f'{int(v):>11d}' if c.startswith('num') else f'{v:>11.4f}')
        lines.append(f'{r:<9}' + ''.join(vals))
    if 'miou_gain' in metrics:
        lines.append(f"mIoU gain (refined - teacher): {metrics['miou_gain']:+.4f}; "
                     f"best-IoU gain: {metrics['best_iou_gain']:+.4f}")
    return '\n'.join(lines)
