"""Teacher schedule for S4M / Guided-Distillation semi-supervised training.

The teacher of a semi-supervised detector (``model.teacher`` / ``model.student``, as in
mmdet's :class:`~mmdet.models.SemiBaseDetector`) follows a three-phase schedule:

1. **Frozen** (optimizer steps ``1 .. burn_in_iters - 1``): the teacher keeps the weights it
   was initialised with (a stage-1 checkpoint loaded elsewhere). Unlike mmdet's
   ``MeanTeacherHook`` nothing is copied at iteration 0 -- that would throw the stage-1
   teacher away and replace it with the (identical or untrained) student.
2. **Hard copy** (right after optimizer step ``burn_in_iters``): every parameter and buffer
   of the student is copied into the teacher.
3. **EMA** (every ``interval`` steps afterwards)::

       teacher <- m * teacher + (1 - m) * student,   m = momentum (default 0.9996)

   i.e. ``m`` is the weight of the *old teacher* (the S4M / Guided Distillation /
   Unbiased-Teacher ``keep_rate`` convention). Note this is the opposite of mmdet's
   ``MeanTeacherHook`` / ``ExpMomentumEMA`` where ``momentum`` is the weight of the *new*
   (student) value: mmdet ``momentum=0.0004`` == ours ``momentum=0.9996``.

Iteration bookkeeping: mmengine calls ``after_train_iter`` with ``runner.iter`` equal to the
0-based index of the iteration that just finished, so ``step = runner.iter + 1`` is the number
of optimizer steps taken so far. All schedule decisions use ``step``.
"""
import logging
from typing import Dict, Iterator, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmssis.registry import HOOKS
from mmssis.utils.misc import unwrap_model

#: Key under ``checkpoint['meta']`` holding the schedule state.
CKPT_META_KEY = 'teacher_schedule'
#: Key of the same state in ``runner.message_hub`` runtime info (read-only mirror for other
#: components, e.g. a detector that changes its losses once the teacher starts moving).
MESSAGE_HUB_INFO_KEY = 'teacher_schedule'


def freeze_teacher(teacher: nn.Module) -> None:
    """Stop gradients into every parameter of ``teacher``.

    Train/eval mode is deliberately left alone: the runner flips the whole model to
    ``train()`` every iteration, and the detector is expected to call ``teacher.eval()``
    itself before predicting pseudo labels (as ``SemiBaseDetector.get_pseudo_instances``
    does).

    Args:
        teacher (nn.Module): The teacher network; modified in place.
    """
    for param in teacher.parameters():
        param.requires_grad_(False)


def _paired_tensors(teacher: nn.Module, student: nn.Module,
                    buffers: bool) -> Iterator[Tuple[str, torch.Tensor, torch.Tensor]]:
    """Yield ``(name, teacher_tensor, student_tensor)`` matched by name.

    Pairs are matched by name rather than by ``zip`` order so that a structural mismatch
    raises instead of silently averaging unrelated tensors.

    Args:
        teacher (nn.Module): Teacher network.
        student (nn.Module): Student network with the same architecture.
        buffers (bool): Yield buffers (e.g. BN ``running_mean``) instead of parameters.
    """
    named = (lambda m: m.named_buffers()) if buffers else (lambda m: m.named_parameters())
    student_tensors = dict(named(student))
    for name, t_tensor in named(teacher):
        if name not in student_tensors:
            raise KeyError(f'teacher tensor {name!r} has no counterpart in the student')
        yield name, t_tensor, student_tensors[name]


@torch.no_grad()
def hard_copy_(teacher: nn.Module, student: nn.Module) -> None:
    """Copy every parameter and buffer of ``student`` into ``teacher`` in place.

    Args:
        teacher (nn.Module): Destination network; its tensors are overwritten.
        student (nn.Module): Source network with the same architecture.
    """
    for buffers in (False, True):
        for _, t_tensor, s_tensor in _paired_tensors(teacher, student, buffers):
            t_tensor.copy_(s_tensor)


@torch.no_grad()
def ema_update_(teacher: nn.Module, student: nn.Module, momentum: float,
                skip_buffers: bool = False) -> None:
    """One EMA step ``teacher <- momentum * teacher + (1 - momentum) * student``, in place.

    Buffer policy (when ``skip_buffers`` is False): floating-point buffers (BN running
    statistics) follow the same EMA as parameters -- the Guided Distillation / Unbiased
    Teacher choice, which keeps the teacher's normalisation statistics consistent with its
    averaged weights. Integer buffers (``num_batches_tracked``) are copied, since averaging
    a counter is meaningless. With ``skip_buffers`` the teacher's buffers are left untouched.

    Args:
        teacher (nn.Module): Network updated in place.
        student (nn.Module): Source network with the same architecture.
        momentum (float): Weight of the current teacher, in ``[0, 1]``.
        skip_buffers (bool): Leave all teacher buffers unchanged.
    """
    weight = 1.0 - momentum  # weight of the student in lerp(teacher, student, weight)
    for _, t_param, s_param in _paired_tensors(teacher, student, buffers=False):
        t_param.lerp_(s_param.to(t_param.dtype), weight)
    if skip_buffers:
        return
    for _, t_buf, s_buf in _paired_tensors(teacher, student, buffers=True):
        if t_buf.dtype.is_floating_point:
            t_buf.lerp_(s_buf.to(t_buf.dtype), weight)
        else:
            t_buf.copy_(s_buf)


@HOOKS.register_module()
class TeacherScheduleHook(Hook):
    """Freeze, then hard-copy, then EMA-update the teacher of a semi-supervised detector.

    Schedule, with ``step = runner.iter + 1`` evaluated in ``after_train_iter`` (the number
    of optimizer steps completed):

    * ``step < burn_in_iters``: teacher untouched (frozen stage-1 weights).
    * ``step == burn_in_iters``: hard copy student -> teacher (parameters *and* buffers,
      regardless of ``skip_buffers``). If a run somehow passes ``burn_in_iters`` without
      the copy (e.g. ``burn_in_iters`` was lowered before resuming) the copy happens at the
      first step after, with a warning. It happens at most once per training run, resumes
      included. With ``burn_in_iters == 0`` there is no hard copy at all and EMA starts at
      step 1 from the initial teacher.
    * ``step > burn_in_iters`` and ``(step - burn_in_iters) % interval == 0``: EMA
      ``teacher <- momentum * teacher + (1 - momentum) * student`` (see
      :func:`ema_update_` for the buffer policy).

    Nothing is done in ``before_train`` except sanity checks and freezing the teacher's
    parameters (``requires_grad=False``); in particular the teacher is never overwritten at
    iteration 0. Freeze in the detector's ``__init__`` too when using DDP: the wrapper
    records which parameters need gradients when it is built, before any hook runs.

    Resume: the teacher weights are in the model state dict (``teacher.*``); the schedule
    state ``{'burned_in', 'last_update_iter', 'num_ema_updates', 'burn_in_iters'}`` is
    saved under ``checkpoint['meta']['teacher_schedule']``. It is adopted only when the
    run actually resumes (``runner.iter > 0`` at ``before_train``); a plain ``load_from``
    starts a fresh schedule. A resumed checkpoint without that key falls back to
    ``burned_in = runner.iter >= burn_in_iters``.

    Logged each iteration through ``runner.message_hub.update_scalar``:
    ``train/teacher_momentum`` (effective weight of the old teacher this step: 1.0 when
    untouched, 0.0 on the hard copy, ``momentum`` on EMA steps) and
    ``train/teacher_updated`` (1.0 if the teacher changed this step, else 0.0).

    Args:
        burn_in_iters (int): Optimizer step after which the hard copy happens
            (e.g. 25000 for COCO, 15000 for Cityscapes in S4M). Defaults to 0.
        momentum (float): Weight of the old teacher in the EMA, ``0 <= m <= 1``.
            Defaults to 0.9996.
        interval (int): EMA every ``interval`` steps after burn-in. Defaults to 1.
        skip_buffers (bool): Leave teacher buffers out of the EMA (they are still copied by
            the hard copy). Defaults to False.
        freeze_teacher (bool): Set ``requires_grad=False`` on all teacher parameters in
            ``before_train``. Defaults to True.
    """

    priority = 'NORMAL'  # must run before CheckpointHook (VERY_LOW) saves this step

    def __init__(self,
                 burn_in_iters: int = 0,
                 momentum: float = 0.9996,
                 interval: int = 1,
                 skip_buffers: bool = False,
                 freeze_teacher: bool = True) -> None:
        if burn_in_iters < 0:
            raise ValueError(f'burn_in_iters must be >= 0, got {burn_in_iters}')
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f'momentum must be in [0, 1], got {momentum}')
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.burn_in_iters = int(burn_in_iters)
        self.momentum = float(momentum)
        self.interval = int(interval)
        self.skip_buffers = skip_buffers
        self.freeze_teacher = freeze_teacher
        self._reset_state()
        # State read by after_load_checkpoint; only adopted in before_train if resuming.
        self._loaded_state: Optional[Dict] = None

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        """Start a fresh schedule: nothing copied, no EMA step taken yet."""
        self.burned_in = self.burn_in_iters == 0
        self.last_update_iter = -1  # step of the last teacher modification; -1 = never
        self.num_ema_updates = 0

    def state_dict(self) -> Dict:
        """Schedule state as stored in ``checkpoint['meta']['teacher_schedule']``."""
        return dict(
            burned_in=self.burned_in,
            last_update_iter=self.last_update_iter,
            num_ema_updates=self.num_ema_updates,
            burn_in_iters=self.burn_in_iters)

    def load_state_dict(self, state: Dict) -> None:
        """Restore the schedule state written by :meth:`state_dict`."""
        self.burned_in = bool(state['burned_in'])
        self.last_update_iter = int(state['last_update_iter'])
        self.num_ema_updates = int(state.get('num_ema_updates', 0))
        if int(state.get('burn_in_iters', self.burn_in_iters)) != self.burn_in_iters:
            print_log(
                f'TeacherScheduleHook: checkpoint was written with burn_in_iters='
                f"{state.get('burn_in_iters')}, now {self.burn_in_iters}; the hard copy "
                f'state (burned_in={self.burned_in}) is kept as saved.',
                logger='current', level=logging.WARNING)

    def _publish_state(self, runner) -> None:
        """Mirror the state into the message hub for other components to read."""
        runner.message_hub.update_info(MESSAGE_HUB_INFO_KEY, self.state_dict())

    # ------------------------------------------------------------------ hooks
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the schedule state in ``checkpoint['meta']``."""
        checkpoint.setdefault('meta', {})[CKPT_META_KEY] = self.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Remember the saved schedule state; :meth:`before_train` decides whether to use it.

        mmengine calls this hook for both ``load_from`` and ``resume`` and only sets
        ``runner.iter`` afterwards, so the decision has to wait.
        """
        meta = checkpoint.get('meta') or {}
        state = meta.get(CKPT_META_KEY)
        self._loaded_state = dict(state) if state is not None else None

    def before_train(self, runner) -> None:
        """Check the model, freeze the teacher and settle the (resumed) schedule state.

        Never modifies the teacher's weights.
        """
        model = unwrap_model(runner.model)
        for attr in ('teacher', 'student'):
            if not isinstance(getattr(model, attr, None), nn.Module):
                raise AttributeError(f'TeacherScheduleHook needs model.{attr} (nn.Module)')
        t_keys = set(model.teacher.state_dict().keys())
        s_keys = set(model.student.state_dict().keys())
        if t_keys != s_keys:
            diff = sorted(t_keys ^ s_keys)[:5]
            raise ValueError(f'teacher and student differ in state_dict keys, e.g. {diff}')
        if self.freeze_teacher:
            freeze_teacher(model.teacher)

        if runner.iter > 0:  # resumed run
            if self._loaded_state is not None:
                self.load_state_dict(self._loaded_state)
            else:
                # The hard copy at step == burn_in_iters runs before the checkpoint of
                # that step is written, hence ">=".
                self._reset_state()
                self.burned_in = runner.iter >= self.burn_in_iters
                print_log(
                    'TeacherScheduleHook: resumed checkpoint has no '
                    f"meta['{CKPT_META_KEY}']; inferred burned_in={self.burned_in} "
                    f'from iter {runner.iter}.', logger='current', level=logging.WARNING)
        else:
            # Fresh run (a load_from checkpoint may carry a stale schedule): start over.
            self._reset_state()
        self._loaded_state = None
        self._publish_state(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """Apply the schedule after optimizer step ``runner.iter + 1``."""
        step = runner.iter + 1
        model = unwrap_model(runner.model)
        effective_momentum = 1.0  # weight kept by the old teacher this step
        if not self.burned_in:
            if step >= self.burn_in_iters:
                if step > self.burn_in_iters:
                    print_log(
                        f'TeacherScheduleHook: hard copy at step {step}, after '
                        f'burn_in_iters={self.burn_in_iters} (late).',
                        logger='current', level=logging.WARNING)
                hard_copy_(model.teacher, model.student)
                self.burned_in = True
                self.last_update_iter = step
                effective_momentum = 0.0
                print_log(f'TeacherScheduleHook: burn-in over, copied student -> teacher '
                          f'after step {step}.', logger='current')
        elif step > self.burn_in_iters and (step - self.burn_in_iters) % self.interval == 0:
            ema_update_(model.teacher, model.student, self.momentum, self.skip_buffers)
            self.last_update_iter = step
            self.num_ema_updates += 1
            effective_momentum = self.momentum

        runner.message_hub.update_scalar('train/teacher_momentum', effective_momentum)
        runner.message_hub.update_scalar('train/teacher_updated',
                                         float(self.last_update_iter == step))
        self._publish_state(runner)
