"""Per-class pseudo-label thresholds from the teacher's measured reliability.

S4M keeps a teacher prediction as a pseudo-label when its score exceeds 0.7 for every
class. :class:`ConfidenceCalibrationHook` replaces that constant with per-class thresholds
measured during training: every ``interval`` iterations it runs the *teacher* on a small
labelled calibration set, flags each candidate pseudo-label as correct or not against the
ground truth, and sets ``model.class_score_thr`` (read by
``SemiMaskDetector.filter_pseudo_instances``) to the lowest threshold per class whose
pseudo-labels reach ``target_precision`` (:func:`mmssis.evaluation.select_thresholds`).

Candidates are the detector's own pseudo-label candidates
(:func:`mmssis.evaluation.calibration_records`: :meth:`SemiMaskDetector.pseudo_label` without
SAM, its mask filter but not its score threshold), compared with the ground truth in the
ground truth's frame (:func:`mmssis.structures.align_to_gt_frame`, the same frame rule as
the pseudo-label quality metric).
"""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dist import all_gather_object

from mmssis.evaluation.pseudo_label_eval import Records, calibration_records
from mmssis.evaluation.calibration import per_class_calibration, precision_curve, select_thresholds
from mmssis.registry import HOOKS
from mmssis.utils.misc import unwrap_model
from mmssis.visualization import render_reliability_figure
from .calibration_slice import CalibrationSliceHook

#: Key under ``checkpoint['meta']`` holding the hook state.
CKPT_META_KEY = 'calibration'
#: Key of the same state in ``runner.message_hub`` runtime info.
MESSAGE_HUB_INFO_KEY = 'calibration'


@HOOKS.register_module()
class ConfidenceCalibrationHook(CalibrationSliceHook):
    """Calibrate per-class pseudo-label score thresholds on labelled images.

    When, on which images, and how the state resumes: :class:`CalibrationSliceHook`
    (``calibrate_at_start`` is its ``at_start``; a resumed checkpoint's thresholds were
    computed with the very teacher that was saved, so they are restored instead).

    What: the teacher predicts on up to ``max_images`` images of the calibration
    dataloader (split evenly over ranks; the detections of all ranks are all-gathered so
    every rank sets identical thresholds). Candidates and frames: see the module docstring.
    Each candidate is correct if it matches an unmatched ground truth of its class with
    mask IoU >= ``iou_thr`` (:func:`~mmssis.evaluation.match_detections`). Then

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
    ``checkpoint['meta']['calibration']``; adopting it sets ``model.class_score_thr``
    before the first iteration.

    Args:
        dataloader, interval, max_images, start_iter: See :class:`CalibrationSliceHook`.
        target_precision: Wanted pseudo-label precision per class.
        min_thr: Lowest threshold.
        max_thr: Highest threshold (also used for classes that never reach the target).
        iou_thr: Mask IoU for a correct detection.
        default_thr: Threshold of classes with fewer than ``min_support`` detections
            scoring ``>= min_thr``: a float, a per-class list, or ``None`` for the
            detector's ``semi_train_cfg.score_thr``.
        calibrate_at_start: Calibrate in ``before_train``.
        min_support: See ``default_thr``.
        num_bins: Equal-width ECE bins.
        min_score: Ignore candidates scoring below this.
        vis_name: Image name for the visualisation backends.
    """

    ckpt_key = CKPT_META_KEY

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
        if not 0.0 <= min_thr <= max_thr <= 1.0:
            raise ValueError(f'need 0 <= min_thr <= max_thr <= 1, got {min_thr}, {max_thr}')
        super().__init__(dataloader, interval, max_images, start_iter, calibrate_at_start)
        self.target_precision = float(target_precision)
        self.min_thr = float(min_thr)
        self.max_thr = float(max_thr)
        self.iou_thr = float(iou_thr)
        self.default_thr = default_thr
        self.min_support = int(min_support)
        self.num_bins = int(num_bins)
        self.min_score = float(min_score)
        self.vis_name = vis_name

    @property
    def calibrate_at_start(self) -> bool:
        return self.at_start

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        self.thresholds: Optional[List[float]] = None
        self.ece: Optional[float] = None
        self.class_ece: Optional[List[float]] = None
        self.last_iter = -1  # optimizer steps done at the last calibration; -1 = never
        self.num_detections = 0

    def _measured(self) -> bool:
        return self.thresholds is not None

    def _restored_summary(self) -> str:
        return f'thresholds {self.thresholds}'

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
            unwrap_model(runner.model).class_score_thr = torch.tensor(self.thresholds,
                                                                 dtype=torch.float32)
        runner.message_hub.update_info(MESSAGE_HUB_INFO_KEY, self.state_dict())

    # ------------------------------------------------------------------ calibration
    def _collect(self, runner, model: torch.nn.Module) -> Records:
        """This rank's records over its share of ``max_images`` calibration images."""
        parts = [calibration_records(model, data, self.iou_thr, self.min_score)
                 for data in self._batches(runner)]
        if not parts:
            return dict(scores=np.zeros(0), labels=np.zeros(0, np.int64),
                        correct=np.zeros(0, bool))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _defaults(self, model: torch.nn.Module) -> Union[float, Sequence[float]]:
        if self.default_thr is not None:
            return self.default_thr
        cfg = getattr(model, 'semi_train_cfg', None) or {}
        return cfg.get('score_thr', 0.7)

    @torch.no_grad()
    def measure(self, runner, step: int) -> Dict:
        """Run one calibration after ``step`` optimizer steps; returns the new state."""
        model = unwrap_model(runner.model)
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
        self._apply(runner)
        self._report(runner, step, rec, calib, thresholds)
        return self.state_dict()

    def calibrate(self, runner, step: int) -> Dict:
        """:meth:`measure`, remembering the teacher (an unchanged one is not re-measured)."""
        return self._measure_and_remember(runner, step)

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
        per_class = ', '.join(f'{n}: thr={t:.3f} ece={e:.3f} n={int(k)}' for n, t, e, k in
                              zip(names, thresholds, calib['class_ece'],
                                  calib['class_counts']))
        title = f'teacher calibration, iter {step} ({len(rec["scores"])} detections)'

        def render(path: str) -> np.ndarray:
            curves = [precision_curve(rec['scores'][rec['labels'] == c],
                                      rec['correct'][rec['labels'] == c])
                      for c in range(len(thresholds))]
            return render_reliability_figure(calib, thresholds, curves, names,
                                             self.target_precision, title=title, path=path)

        self._publish(runner, step, scalars,
                      f'ConfidenceCalibrationHook @ iter {step}: {len(rec["scores"])} '
                      f'detections, ECE {calib["ece"]:.4f}; {per_class}', 'reliability', render)
