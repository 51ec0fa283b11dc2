"""Refine with SAM only where it helps: SAM's benefit per class, measured during training.

S4M replaces every kept teacher pseudo-mask by SAM's. Whether that pays depends on the
domain (a medical SAM on photos, a photo SAM on cells ...). :class:`SamBenefitHook` measures
it on the labelled calibration slice with the run's own teacher and SAM refiner, and with
the refiner's ``policy='measured'`` turns the measurement into which classes SAM refines.
"""
from typing import Dict, List, Optional, Union

import numpy as np
import torch

from mmssis.evaluation.pseudo_label_eval import evaluate_sam_benefit
from mmssis.evaluation.sam_benefit import format_benefit_table, refine_decisions, sam_helps
from mmssis.registry import HOOKS
from mmssis.utils.misc import unwrap_model
from mmssis.visualization import render_sam_benefit_figure
from .calibration_slice import CalibrationSliceHook

#: Key under ``checkpoint['meta']`` holding the hook state.
CKPT_META_KEY = 'sam_benefit'
#: Key of the same state in ``runner.message_hub`` runtime info.
MESSAGE_HUB_INFO_KEY = 'sam_benefit'
_TABLE_KEYS = ('num', 'teacher_iou', 'refined_iou', 'gain', 'gain_se', 'worse')


@HOOKS.register_module()
class SamBenefitHook(CalibrationSliceHook):
    """Measure per class whether SAM's refinement improves the teacher's pseudo-masks.

    When, on which images, and how the state resumes: :class:`CalibrationSliceHook`
    (``measure_at_start`` is its ``at_start``: the decision exists before the first
    iteration). Put it after :class:`ConfidenceCalibrationHook` in ``custom_hooks``
    (same priority, so list order): it then measures with the new thresholds.

    What: the teacher's kept pseudo-instances on up to ``max_images`` slice images (the
    one pseudo-label path, :meth:`SemiMaskDetector.pseudo_label`) are refined by the
    model's SAM refiner with its policy lifted (every instance), and both masks of each
    pair are scored against the GT the teacher mask matches
    (:func:`mmssis.evaluation.evaluate_sam_benefit`; pairs of all ranks gathered). A class is
    refined where :func:`~mmssis.evaluation.sam_helps` says its mean gain exceeds ``z``
    standard errors on >= ``min_support`` pairs; undecided classes (fewer pairs) only with
    ``refine_undecided``. Then

    * with ``policy='measured'`` the refiner's ``class_enabled`` is set to the decisions;
      with ``'always'`` / ``'never'`` the hook only measures and reports;
    * per class ``sam_benefit/{teacher_iou,refined_iou,gain,worse,refine}_<class>``, plus
      ``sam_benefit/pairs`` and ``sam_benefit/refined_share`` (share of the matched
      pseudo-instances of the slice whose class SAM refines from now on) go to the
      message hub and the visualisation backends; the table is logged;
    * the figure is saved to ``{work_dir}/calibration/sam_benefit_iter_{N}.png`` beside the
      reliability diagrams and sent to the backends as image ``vis_name``.

    Resume: ``{'iter', 'enabled', 'decisions', 'table', 'policy'}`` is saved in
    ``checkpoint['meta']['sam_benefit']`` and restored on ``--resume`` (the refiner gets
    the saved decisions before the first iteration, no re-measurement).

    Args:
        dataloader, interval, max_images, start_iter: See :class:`CalibrationSliceHook`.
        iou_thr: Mask IoU of a teacher mask's GT match.
        z: Standard errors the mean gain must clear.
        min_support: Pairs a class needs for a decision.
        refine_undecided: Refine the classes with fewer than ``min_support`` pairs.
        measure_at_start: Measure in ``before_train``.
        vis_name: Image name for the visualisation backends.
    """

    ckpt_key = CKPT_META_KEY

    def __init__(self,
                 dataloader: Optional[Union[dict, str, object]] = None,
                 interval: int = 1000,
                 max_images: int = 200,
                 iou_thr: float = 0.5,
                 z: float = 1.64,
                 min_support: int = 5,
                 refine_undecided: bool = False,
                 start_iter: int = 0,
                 measure_at_start: bool = True,
                 vis_name: str = 'sam_benefit') -> None:
        super().__init__(dataloader, interval, max_images, start_iter, measure_at_start)
        self.iou_thr = float(iou_thr)
        self.z = float(z)
        self.min_support = int(min_support)
        self.refine_undecided = bool(refine_undecided)
        self.vis_name = vis_name

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        self.last_iter = -1
        self.enabled: Optional[List[bool]] = None
        self.decisions: Optional[List[Optional[bool]]] = None
        self.table: Optional[Dict[str, List[float]]] = None
        self.policy: Optional[str] = None

    def _measured(self) -> bool:
        return self.enabled is not None

    def _restored_summary(self) -> str:
        return f'refine per class {self.enabled} (policy {self.policy})'

    def state_dict(self) -> Dict:
        """Plain-Python state (safe for ``weights_only`` checkpoint loading)."""
        return dict(iter=self.last_iter, enabled=self.enabled, decisions=self.decisions,
                    table=self.table, policy=self.policy)

    def load_state_dict(self, state: Dict) -> None:
        self.last_iter = int(state.get('iter', -1))
        enabled = state.get('enabled')
        self.enabled = None if enabled is None else [bool(e) for e in enabled]
        decisions = state.get('decisions')
        self.decisions = None if decisions is None else [
            None if d is None else bool(d) for d in decisions]
        table = state.get('table')
        self.table = None if table is None else {k: [float(v) for v in table[k]]
                                                 for k in _TABLE_KEYS}
        self.policy = state.get('policy')

    def _refiner(self, runner):
        refiner = unwrap_model(runner.model).sam_refiner
        if refiner is None:
            raise ValueError('SamBenefitHook needs a SAM refiner '
                             '(model.semi_train_cfg.sam_refiner)')
        return refiner

    def _apply(self, runner) -> None:
        """Give the refiner the decisions (``policy='measured'``); mirror the state in the
        message hub."""
        refiner = self._refiner(runner)
        if refiner.policy == 'measured' and self.enabled is not None:
            _give_decisions(runner.model, self.enabled)
        runner.message_hub.update_info(MESSAGE_HUB_INFO_KEY, self.state_dict())

    def before_train(self, runner) -> None:
        self._refiner(runner)  # fail before anything runs
        super().before_train(runner)

    # ------------------------------------------------------------------ measurement
    @torch.no_grad()
    def measure(self, runner, step: int) -> Dict:
        """Measure after ``step`` optimizer steps, decide, apply; returns the new state."""
        model = unwrap_model(runner.model)
        refiner = self._refiner(runner)
        table = evaluate_sam_benefit(model, self._batches(runner), refiner=refiner,
                                     iou_thr=self.iou_thr)
        decisions = sam_helps(table, z=self.z, min_support=self.min_support)
        self.enabled = refine_decisions(decisions, self.refine_undecided)
        self.decisions = decisions
        self.table = {k: [float(v) for v in table[k]] for k in _TABLE_KEYS}
        self.last_iter = int(step)
        self.policy = refiner.policy
        self._apply(runner)
        self._report(runner, step, table, decisions)
        return self.state_dict()

    def _report(self, runner, step: int, table: Dict[str, np.ndarray],
                decisions: List[Optional[bool]]) -> None:
        names = self._class_names(len(decisions))
        num = table['num']
        pairs = int(num.sum())
        scalars = {'sam_benefit/pairs': float(pairs),
                   'sam_benefit/refined_share':
                       float(num[np.asarray(self.enabled, bool)].sum() / pairs) if pairs
                       else 0.0}
        for c, name in enumerate(names):
            scalars[f'sam_benefit/refine_{name}'] = float(self.enabled[c])
            if num[c]:
                for key in ('teacher_iou', 'refined_iou', 'gain', 'worse'):
                    scalars[f'sam_benefit/{key}_{name}'] = float(table[key][c])
        applied = '' if self.policy == 'measured' else \
            f" (policy '{self.policy}': decisions not applied)"
        title = f'SAM benefit, iter {step} ({pairs} matched pseudo-instances)'
        self._publish(
            runner, step, scalars,
            f'SamBenefitHook @ iter {step}: {pairs} matched pseudo-instances, SAM refines '
            f'{[n for n, e in zip(names, self.enabled) if e]}{applied}\n'
            + format_benefit_table(table, names, decisions), 'sam_benefit',
            lambda path: render_sam_benefit_figure(table, decisions, names, z=self.z,
                                                   title=title, path=path))


def restore_sam_decisions(model, checkpoint: dict) -> Optional[List[bool]]:
    """Outside training: give a loaded model's ``policy='measured'`` refiner the per-class
    decisions its run saved (``checkpoint['meta']['sam_benefit']``, the last measurement).

    Args:
        model: A ``SemiMaskDetector`` (possibly wrapped) after loading ``checkpoint``.
        checkpoint: The loaded checkpoint dict (``mmengine.runner.load_checkpoint``'s
            return value).

    Returns:
        The restored ``class_enabled``, or ``None`` when the model has no ``'measured'``
        refiner or the checkpoint holds no decisions (e.g. a stage-1 teacher); the caller
        says what it does then.

    Raises:
        ValueError: The saved decisions cover another number of classes than the model.
    """
    refiner = getattr(unwrap_model(model), 'sam_refiner', None)
    if refiner is None or refiner.policy != 'measured':
        return None
    state = ((checkpoint or {}).get('meta') or {}).get(CKPT_META_KEY) or {}
    if state.get('enabled') is None:
        return None
    _give_decisions(model, state['enabled'])
    return refiner.class_enabled


def _give_decisions(model, enabled: List[bool]) -> None:
    """Set the model's refiner's ``class_enabled``, refusing decisions saved for another
    number of classes."""
    model = unwrap_model(model)
    num_classes = int(model.num_classes)
    if len(enabled) != num_classes:
        raise ValueError(f'SamBenefitHook: the saved decisions cover {len(enabled)} classes, '
                         f'the model has {num_classes}')
    model.sam_refiner.set_class_enabled(enabled)
