"""Per-class pseudo-label thresholds from the teacher's measured reliability.

S4M keeps a teacher prediction as a pseudo-label when its score exceeds 0.7 for every
class. :class:`ConfidenceCalibrationHook` replaces that constant with per-class thresholds
measured during training: every ``interval`` iterations it runs the *teacher* on a small
labelled calibration set, flags each candidate pseudo-label as correct or not against the
ground truth, and sets ``model.class_score_thr`` (read by
``SemiMaskDetector.filter_pseudo_instances``) to the lowest threshold per class whose
pseudo-labels reach ``target_precision`` (:func:`mmssis.evaluation.select_thresholds`).

Candidates are produced exactly like the detector's pseudo-labels
(:func:`~mmssis.models.detectors.pseudo_labels.teacher_pseudo_instances` on the
preprocessed batch, masks ``sigmoid(mask_logits) >= mask_thr``, instances with mask area
``<= min_mask_area`` in the teacher frame dropped) but *without* the score filter.

Coordinate frames: candidate masks live in the teacher input frame (``img_shape``). The
ground-truth ``BitmapMasks`` of a sample are in

* ``img_shape`` when the pipeline loads annotations *before* ``Resize`` (compared as is);
* ``ori_shape`` when it loads them *after* ``Resize`` (the demo/mmdet test pipelines):
  the candidate mask logits are resized bilinearly to ``ori_shape`` first, as mmdet does
  for ``rescale=True`` predictions;
* a padded frame (``pad_shape``) when the pipeline pads: the ground truth is cropped to
  the top-left ``img_shape`` (mmdet pads bottom/right).

Test-time flips or other geometry beyond resize/pad are not supported.
"""
import copy
import logging
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dist import all_gather_object, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.structures import InstanceData
from torch import Tensor

from mmssis.evaluation.calibration import (match_detections, per_class_calibration,
                                           precision_curve, select_thresholds)
from mmssis.models.detectors.pseudo_labels import teacher_pseudo_instances
from mmssis.registry import HOOKS

#: Key under ``checkpoint['meta']`` holding the hook state.
CKPT_META_KEY = 'calibration'
#: Key of the same state in ``runner.message_hub`` runtime info.
MESSAGE_HUB_INFO_KEY = 'calibration'

Records = Dict[str, np.ndarray]


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model behind a DDP/FSDP-style wrapper."""
    return model.module if is_model_wrapper(model) else model


def teacher_fingerprint(teacher: torch.nn.Module) -> Tuple[float, ...]:
    """A cheap identity of the teacher's weights and buffers (float64 sums per tensor).

    Equal fingerprints mean (practically) identical teachers, so a calibration would
    reproduce the last one; used to skip re-calibrating a frozen teacher.
    """
    with torch.no_grad():
        return tuple(float(t.detach().double().sum())
                     for t in list(teacher.parameters()) + list(teacher.buffers())
                     if t.is_floating_point())


def _prob_to_logit(prob: float) -> float:
    prob = min(max(prob, 1e-6), 1 - 1e-6)
    return math.log(prob / (1 - prob))


def candidates_in_gt_frame(logits: Tensor, img_shape: Tuple[int, int],
                           ori_shape: Tuple[int, int],
                           gt_hw: Tuple[int, int]) -> Tuple[Tensor, Tuple[int, int]]:
    """Bring candidate mask logits into the ground-truth frame (see module docstring).

    Args:
        logits: (N, H_img, W_img) mask logits in the teacher ``img_shape`` frame.
        img_shape: ``(H_img, W_img)`` of the sample.
        ori_shape: ``(H_ori, W_ori)`` of the sample.
        gt_hw: ``(H_gt, W_gt)`` of the sample's ground-truth masks.

    Returns:
        The logits in the comparison frame and the ``(h, w)`` crop to apply to the
        ground-truth masks (equal to ``gt_hw`` unless the ground truth is padded).
    """
    img_shape, ori_shape, gt_hw = tuple(img_shape[:2]), tuple(ori_shape[:2]), tuple(gt_hw)
    if gt_hw == img_shape:
        return logits, gt_hw
    if gt_hw == ori_shape:
        if len(logits) == 0:
            return logits.new_zeros((0, *ori_shape)), gt_hw
        resized = F.interpolate(logits[:, None].float(), size=ori_shape, mode='bilinear',
                                align_corners=False)[:, 0]
        return resized, gt_hw
    if gt_hw[0] >= img_shape[0] and gt_hw[1] >= img_shape[1]:
        return logits, img_shape
    raise ValueError(f'ground-truth masks of size {gt_hw} match neither img_shape '
                     f'{img_shape} nor ori_shape {ori_shape}')


@torch.no_grad()
def calibration_records(model: torch.nn.Module, data: dict, iou_thr: float = 0.5,
                        min_score: float = 0.0) -> Records:
    """Teacher candidates of one batch with their correctness against the ground truth.

    Args:
        model: The bare semi-supervised detector (``teacher``, ``data_preprocessor``,
            optional ``semi_train_cfg`` with ``mask_thr`` / ``min_mask_area``).
        data: A dataloader batch (``inputs`` list, ``data_samples`` with ``gt_instances``
            holding ``labels`` and ``masks``).
        iou_thr: Mask IoU of a correct detection.
        min_score: Candidates scoring below this are ignored (e.g. the many near-zero
            Mask2Former queries).

    Returns:
        ``scores`` (K,) float, ``labels`` (K,) int64 and ``correct`` (K,) bool over all
        kept candidates of the batch.
    """
    cfg = getattr(model, 'semi_train_cfg', None) or {}
    logit_thr = _prob_to_logit(float(cfg.get('mask_thr', 0.5)))
    min_area = float(cfg.get('min_mask_area', 0))
    batch = model.data_preprocessor(data, False)
    samples = batch['data_samples']
    candidates: List[InstanceData] = teacher_pseudo_instances(model.teacher, batch['inputs'],
                                                              samples)
    scores, labels, correct = [], [], []
    for inst, sample in zip(candidates, samples):
        gt = sample.gt_instances
        if 'masks' not in gt:
            raise KeyError('ConfidenceCalibrationHook needs ground-truth masks: load them '
                           "in the calibration pipeline (LoadAnnotations with_mask=True)")
        area = (inst.mask_logits >= logit_thr).flatten(1).sum(1)
        inst = inst[(area > min_area) & (inst.scores >= min_score)]
        gt_masks = gt.masks.to_ndarray() if hasattr(gt.masks, 'to_ndarray') else gt.masks
        gt_masks = torch.as_tensor(np.asarray(gt_masks)).bool()
        logits, (h, w) = candidates_in_gt_frame(
            inst.mask_logits, sample.metainfo['img_shape'], sample.metainfo['ori_shape'],
            tuple(gt_masks.shape[-2:]))
        flags = match_detections(logits.cpu() >= logit_thr, inst.labels, inst.scores,
                                 gt_masks[:, :h, :w], gt.labels, iou_thr)
        scores.append(inst.scores.float().cpu().numpy())
        labels.append(inst.labels.cpu().numpy().astype(np.int64))
        correct.append(flags)
    return dict(scores=np.concatenate(scores or [np.zeros(0)]).astype(np.float64),
                labels=np.concatenate(labels or [np.zeros(0, np.int64)]),
                correct=np.concatenate(correct or [np.zeros(0, bool)]))


def render_reliability_figure(calib: dict, thresholds: np.ndarray,
                              curves: Sequence[dict], class_names: Sequence[str],
                              target_precision: float, title: str,
                              path: Optional[str] = None) -> np.ndarray:
    """Reliability diagram + precision-vs-threshold curves as an RGB image.

    Args:
        calib: Output of :func:`~mmssis.evaluation.per_class_calibration`.
        thresholds: (C,) selected thresholds.
        curves: C outputs of :func:`~mmssis.evaluation.precision_curve`.
        class_names: C names.
        target_precision: Drawn as a horizontal line.
        title: Figure title.
        path: Also save the figure as PNG here if given.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    # Figure + Agg canvas (no pyplot): no global state, works whatever MPLBACKEND says.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10, 4.5), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax_rel, ax_prec = fig.subplots(1, 2)
    curve = calib['curve']
    centers = (curve['edges'][:-1] + curve['edges'][1:]) / 2
    width = curve['edges'][1] - curve['edges'][0]
    ax_rel.bar(centers, np.nan_to_num(curve['accuracy']), width=width * 0.9, alpha=0.35,
               color='gray', edgecolor='black', label=f"all (ECE {calib['ece']:.3f})")
    for name, ccurve, ece in zip(class_names, calib['class_curves'], calib['class_ece']):
        if np.isfinite(ece):
            ax_rel.plot(ccurve['confidence'], ccurve['accuracy'], marker='o', ms=3,
                        label=f'{name} ({ece:.3f})')
    ax_rel.plot([0, 1], [0, 1], 'k--', lw=1)
    ax_rel.set(xlim=(0, 1), ylim=(0, 1), xlabel='confidence (score)',
               ylabel='accuracy (mask IoU match)', title='reliability')
    ax_rel.legend(fontsize=7, loc='upper left')
    for i, (name, pcurve) in enumerate(zip(class_names, curves)):
        line, = ax_prec.plot(pcurve['thresholds'], pcurve['precision'], label=name)
        ax_prec.axvline(thresholds[i], color=line.get_color(), ls=':', lw=1)
    ax_prec.axhline(target_precision, color='k', ls='--', lw=1)
    ax_prec.set(xlim=(0, 1), ylim=(0, 1.02), xlabel='threshold t',
                ylabel='precision of score >= t', title='precision (dotted: chosen t)')
    ax_prec.legend(fontsize=7, loc='lower right')
    fig.suptitle(title)
    fig.tight_layout()
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    if path is not None:
        fig.savefig(path)
    return image


@HOOKS.register_module()
class ConfidenceCalibrationHook(Hook):
    """Calibrate per-class pseudo-label score thresholds on labelled images.

    When: after optimizer step ``step = runner.iter + 1`` if ``step >= start_iter`` and
    ``(step - start_iter) % interval == 0``; and in ``before_train`` if
    ``calibrate_at_start`` (the stage-1 teacher is already meaningful at iteration 0),
    except when a resumed checkpoint already carried thresholds (they were computed with
    the very teacher that was saved, so they are restored instead).

    What: the teacher predicts on up to ``max_images`` images of the calibration
    dataloader (split evenly over ranks; each rank uses its sampler shard, and the
    detections of all ranks are all-gathered so every rank sets identical thresholds).
    Candidates and frames: see the module docstring. Each candidate is correct if it
    matches an unmatched ground truth of its class with mask IoU >= ``iou_thr``
    (:func:`~mmssis.evaluation.match_detections`). Then

    * ``model.class_score_thr = tensor(select_thresholds(...))`` (C,) float32 (see
      :func:`~mmssis.evaluation.select_thresholds` for the exact rule);
    * ECE (overall and per class), thresholds and the number of detections are put in
      ``runner.message_hub`` (``calibration/ece``, ``calibration/ece_<class>``,
      ``calibration/thr_<class>``; the whole state under runtime info ``calibration``),
      logged through ``runner.logger`` and sent to the visualisation backends with
      ``runner.visualizer.add_scalars``;
    * a reliability diagram is saved to
      ``{work_dir}/calibration/reliability_iter_{N}.png`` (``N``: optimizer steps done)
      and sent to the backends as image ``vis_name`` at step ``N`` (the default name has
      no ``/``: ``LocalVisBackend`` writes ``{name}_{step}.png`` and would fail silently
      on a missing sub-folder).

    Resume: ``{'thresholds', 'ece', 'class_ece', 'iter', 'num_detections'}`` is saved in
    ``checkpoint['meta']['calibration']``. It is adopted in ``before_train`` only when the
    run resumes (``runner.iter > 0``), like ``TeacherScheduleHook``: a ``load_from`` starts
    fresh. Adopting it sets ``model.class_score_thr`` before the first iteration.

    Args:
        dataloader: Dataloader config (like ``val_dataloader``; its pipeline must load GT
            masks), the name of a top-level dataloader config of the run's config (e.g.
            ``'calibration_dataloader'``; read from ``runner.cfg``), or a built
            ``DataLoader``. ``None`` reuses ``runner.val_dataloader``.
        interval: Calibrate every this many optimizer steps.
        max_images: Images per calibration, over all ranks.
        target_precision: Wanted pseudo-label precision per class.
        min_thr: Lowest threshold.
        max_thr: Highest threshold (also used for classes that never reach the target).
        iou_thr: Mask IoU for a correct detection.
        default_thr: Threshold of classes with fewer than ``min_support`` detections
            scoring ``>= min_thr``: a float, a per-class list, or ``None`` for the
            detector's ``semi_train_cfg.score_thr``.
        start_iter: First step at which to calibrate (e.g. the burn-in end).
        calibrate_at_start: Calibrate in ``before_train`` (see above).
        min_support: See ``default_thr``.
        num_bins: Equal-width ECE bins.
        min_score: Ignore candidates scoring below this.
        vis_name: Image name for the visualisation backends.
    """

    priority = 'LOW'  # after TeacherScheduleHook (NORMAL), before CheckpointHook

    def __init__(self,
                 dataloader: Optional[Union[dict, str, object]] = None,
                 interval: int = 1000,
                 max_images: int = 200,
                 target_precision: float = 0.8,
                 min_thr: float = 0.3,
                 max_thr: float = 0.95,
                 iou_thr: float = 0.5,
                 default_thr: Optional[Union[float, Sequence[float]]] = None,
                 start_iter: int = 0,
                 calibrate_at_start: bool = True,
                 min_support: int = 5,
                 num_bins: int = 10,
                 min_score: float = 0.05,
                 vis_name: str = 'calibration_reliability') -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if max_images < 1:
            raise ValueError(f'max_images must be >= 1, got {max_images}')
        if not 0.0 <= min_thr <= max_thr <= 1.0:
            raise ValueError(f'need 0 <= min_thr <= max_thr <= 1, got {min_thr}, {max_thr}')
        self.dataloader_cfg = dataloader
        self.interval = int(interval)
        self.max_images = int(max_images)
        self.target_precision = float(target_precision)
        self.min_thr = float(min_thr)
        self.max_thr = float(max_thr)
        self.iou_thr = float(iou_thr)
        self.default_thr = default_thr
        self.start_iter = int(start_iter)
        self.calibrate_at_start = calibrate_at_start
        self.min_support = int(min_support)
        self.num_bins = int(num_bins)
        self.min_score = float(min_score)
        self.vis_name = vis_name
        self._loader = None
        self._loaded_state: Optional[Dict] = None
        self._reset_state()

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        self.thresholds: Optional[List[float]] = None
        self.ece: Optional[float] = None
        self.class_ece: Optional[List[float]] = None
        self.last_iter = -1  # optimizer steps done at the last calibration; -1 = never
        self.num_detections = 0
        self._fingerprint: Optional[Tuple[float, ...]] = None  # teacher at last calibration

    def state_dict(self) -> Dict:
        """Plain-Python state (safe for ``weights_only`` checkpoint loading)."""
        return dict(thresholds=self.thresholds, ece=self.ece, class_ece=self.class_ece,
                    iter=self.last_iter, num_detections=self.num_detections)

    def load_state_dict(self, state: Dict) -> None:
        thr = state.get('thresholds')
        self.thresholds = None if thr is None else [float(t) for t in thr]
        self.ece = None if state.get('ece') is None else float(state['ece'])
        cls_ece = state.get('class_ece')
        self.class_ece = None if cls_ece is None else [float(e) for e in cls_ece]
        self.last_iter = int(state.get('iter', -1))
        self.num_detections = int(state.get('num_detections', 0))

    def _apply(self, runner) -> None:
        """Set ``model.class_score_thr`` from the state and mirror it in the message hub."""
        if self.thresholds is not None:
            _unwrap(runner.model).class_score_thr = torch.tensor(self.thresholds,
                                                                 dtype=torch.float32)
        runner.message_hub.update_info(MESSAGE_HUB_INFO_KEY, self.state_dict())

    # ------------------------------------------------------------------ hooks
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[CKPT_META_KEY] = self.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Remember the saved state; ``before_train`` adopts it if the run resumes.

        mmengine calls this for ``load_from`` and ``resume`` alike and sets
        ``runner.iter`` only afterwards.
        """
        state = (checkpoint.get('meta') or {}).get(CKPT_META_KEY)
        self._loaded_state = dict(state) if state is not None else None

    def before_train(self, runner) -> None:
        model = _unwrap(runner.model)
        if not isinstance(getattr(model, 'teacher', None), torch.nn.Module):
            raise AttributeError('ConfidenceCalibrationHook needs model.teacher (nn.Module)')
        self._reset_state()
        if runner.iter > 0 and self._loaded_state is not None:
            self.load_state_dict(self._loaded_state)
            print_log(f'ConfidenceCalibrationHook: restored thresholds {self.thresholds} '
                      f'(calibrated at iter {self.last_iter}).', logger='current')
        self._loaded_state = None
        self._apply(runner)
        if self.calibrate_at_start and self.thresholds is None:
            self.calibrate(runner, runner.iter)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        step = runner.iter + 1
        if step >= self.start_iter and (step - self.start_iter) % self.interval == 0:
            teacher = _unwrap(runner.model).teacher
            if (self.thresholds is not None
                    and teacher_fingerprint(teacher) == self._fingerprint):
                # A frozen teacher (before burn-in) scores the slice exactly as before.
                print_log(f'ConfidenceCalibrationHook @ iter {step}: teacher unchanged since '
                          f'iter {self.last_iter}, thresholds kept.', logger='current')
                return
            self.calibrate(runner, step)

    # ------------------------------------------------------------------ calibration
    def _calibration_loader(self, runner):
        if self._loader is None:
            cfg = self.dataloader_cfg
            if isinstance(cfg, str):  # a top-level dataloader entry of the run's config
                if cfg not in runner.cfg:
                    raise KeyError(f'ConfidenceCalibrationHook: dataloader={cfg!r} is not '
                                   'a key of the config')
                cfg = runner.cfg[cfg]
            if cfg is None:
                self._loader = runner.val_dataloader
            elif isinstance(cfg, dict):
                self._loader = runner.build_dataloader(copy.deepcopy(cfg), seed=runner.seed)
            else:
                self._loader = cfg
        return self._loader

    def _collect(self, runner, model: torch.nn.Module) -> Records:
        """This rank's records over its share of ``max_images`` calibration images."""
        limit = math.ceil(self.max_images / get_world_size())
        parts: List[Records] = []
        seen = 0
        for data in self._calibration_loader(runner):
            take = min(len(data['inputs']), limit - seen)
            data = dict(data, inputs=data['inputs'][:take],
                        data_samples=data['data_samples'][:take])
            parts.append(calibration_records(model, data, self.iou_thr, self.min_score))
            seen += take
            if seen >= limit:
                break
        if not parts:
            return dict(scores=np.zeros(0), labels=np.zeros(0, np.int64),
                        correct=np.zeros(0, bool))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _defaults(self, model: torch.nn.Module) -> Union[float, Sequence[float]]:
        if self.default_thr is not None:
            return self.default_thr
        cfg = getattr(model, 'semi_train_cfg', None) or {}
        return cfg.get('score_thr', 0.7)

    def _class_names(self, num_classes: int) -> List[str]:
        dataset = getattr(self._loader, 'dataset', None)
        names = list((getattr(dataset, 'metainfo', None) or {}).get('classes') or [])
        if len(names) != num_classes:
            names = [str(i) for i in range(num_classes)]
        return names

    @torch.no_grad()
    def calibrate(self, runner, step: int) -> Dict:
        """Run one calibration after ``step`` optimizer steps; returns the new state."""
        model = _unwrap(runner.model)
        teacher = model.teacher
        was_training = teacher.training
        teacher.eval()
        try:
            local = self._collect(runner, model)
        finally:
            teacher.train(was_training)
        gathered = all_gather_object(local)  # single process: [local]
        rec = {k: np.concatenate([g[k] for g in gathered]) for k in local}
        num_classes = int(model.num_classes)
        thresholds = select_thresholds(
            rec['scores'], rec['labels'], rec['correct'], num_classes,
            target_precision=self.target_precision, min_thr=self.min_thr,
            max_thr=self.max_thr, default=self._defaults(model),
            min_support=self.min_support)
        calib = per_class_calibration(rec['scores'], rec['labels'], rec['correct'],
                                      num_classes, self.num_bins)
        self.thresholds = [float(t) for t in thresholds]
        self.ece = float(calib['ece'])
        self.class_ece = [float(e) for e in calib['class_ece']]
        self.last_iter = int(step)
        self.num_detections = int(len(rec['scores']))
        self._fingerprint = teacher_fingerprint(teacher)
        self._apply(runner)
        self._report(runner, step, rec, calib, thresholds)
        return self.state_dict()

    def _report(self, runner, step: int, rec: Records, calib: dict,
                thresholds: np.ndarray) -> None:
        names = self._class_names(len(thresholds))
        scalars = {'calibration/num_detections': float(len(rec['scores']))}
        if np.isfinite(calib['ece']):
            scalars['calibration/ece'] = float(calib['ece'])
        for name, ece, thr in zip(names, calib['class_ece'], thresholds):
            scalars[f'calibration/thr_{name}'] = float(thr)
            if np.isfinite(ece):
                scalars[f'calibration/ece_{name}'] = float(ece)
        for key, value in scalars.items():
            runner.message_hub.update_scalar(key, value)
        per_class = ', '.join(f'{n}: thr={t:.3f} ece={e:.3f} n={int(k)}' for n, t, e, k in
                              zip(names, thresholds, calib['class_ece'],
                                  calib['class_counts']))
        runner.logger.info(
            f'ConfidenceCalibrationHook @ iter {step}: {len(rec["scores"])} detections, '
            f'ECE {calib["ece"]:.4f}; {per_class}')
        if not is_main_process():
            return
        runner.visualizer.add_scalars(scalars, step=step)
        curves = [precision_curve(rec['scores'][rec['labels'] == c],
                                  rec['correct'][rec['labels'] == c])
                  for c in range(len(thresholds))]
        out_dir = osp.join(runner.work_dir, 'calibration')
        os.makedirs(out_dir, exist_ok=True)
        try:
            image = render_reliability_figure(
                calib, thresholds, curves, names, self.target_precision,
                title=f'teacher calibration, iter {step} ({len(rec["scores"])} detections)',
                path=osp.join(out_dir, f'reliability_iter_{step}.png'))
        except ImportError as err:  # matplotlib is optional for training itself
            print_log(f'ConfidenceCalibrationHook: no reliability plot ({err})',
                      logger='current', level=logging.WARNING)
            return
        runner.visualizer.add_image(self.vis_name, image, step=step)
