"""Teacher schedule for S4M / Guided-Distillation semi-supervised training.

mmdet's :class:`~mmdet.engine.hooks.MeanTeacherHook` with the S4M / Guided Distillation
schedule for ``model.teacher`` / ``model.student`` (as in mmdet's ``SemiBaseDetector``).
mmengine calls ``after_train_iter`` with ``runner.iter`` the 0-based index of the iteration
that just finished, so ``step = runner.iter + 1`` optimizer steps are done; after step ``step``:

1. ``step < burn_in_iters``: nothing -- the teacher keeps the stage-1 weights given as
   ``load_from``. Unlike ``MeanTeacherHook`` nothing is copied at iteration 0.
2. ``step == burn_in_iters``: hard copy of every parameter and buffer, student -> teacher.
3. ``step > burn_in_iters`` and ``(step - burn_in_iters) % interval == 0``: EMA::

       teacher <- m * teacher + (1 - m) * student,   m = momentum (default 0.9996)

``m`` is the weight of the *old teacher* (the S4M / Guided Distillation / Unbiased-Teacher
``keep_rate``), the opposite of mmdet's ``momentum``, which weighs the student: mmdet
``momentum=0.0004`` == ours ``momentum=0.9996``.

The hook keeps no state: everything follows from ``runner.iter``, so ``--resume`` restores the
schedule by construction and nothing of it is saved in the checkpoint.
"""
import logging
from typing import Dict, Iterator, Optional, Tuple

import torch
import torch.nn as nn
from mmdet.engine.hooks import MeanTeacherHook
from mmengine.logging import print_log

from mmssis.registry import HOOKS
from mmssis.utils.misc import unwrap_model

#: Runtime-info key under which the schedule at the current step is mirrored in the message
#: hub (derived from ``runner.iter``, for other components to read; never read back).
MESSAGE_HUB_INFO_KEY = 'teacher_schedule'


def freeze_teacher(teacher: nn.Module) -> None:
    """Stop gradients into every parameter of ``teacher`` (train/eval mode is left alone:
    the detector calls ``teacher.eval()`` itself before pseudo-labelling)."""
    for param in teacher.parameters():
        param.requires_grad_(False)


def _paired_tensors(teacher: nn.Module, student: nn.Module,
                    buffers: bool) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """``(teacher_tensor, student_tensor)`` parameter (or buffer) pairs matched by name, so a
    structural mismatch raises instead of averaging unrelated tensors."""
    named = (lambda m: m.named_buffers()) if buffers else (lambda m: m.named_parameters())
    student_tensors = dict(named(student))
    for name, t_tensor in named(teacher):
        if name not in student_tensors:
            raise KeyError(f'teacher tensor {name!r} has no counterpart in the student')
        yield t_tensor, student_tensors[name]


@torch.no_grad()
def hard_copy_(teacher: nn.Module, student: nn.Module) -> None:
    """Copy every parameter and buffer of ``student`` into ``teacher`` in place."""
    for buffers in (False, True):
        for t_tensor, s_tensor in _paired_tensors(teacher, student, buffers):
            t_tensor.copy_(s_tensor)


@torch.no_grad()
def _lerp_(teacher: nn.Module, student: nn.Module, weight: float, skip_buffers: bool) -> None:
    """``teacher <- (1 - weight) * teacher + weight * student`` in place (see ema_update_)."""
    for t_param, s_param in _paired_tensors(teacher, student, buffers=False):
        t_param.lerp_(s_param.to(t_param.dtype), weight)
    if skip_buffers:
        return
    for t_buf, s_buf in _paired_tensors(teacher, student, buffers=True):
        if t_buf.dtype.is_floating_point:
            t_buf.lerp_(s_buf.to(t_buf.dtype), weight)
        else:
            t_buf.copy_(s_buf)


def ema_update_(teacher: nn.Module, student: nn.Module, momentum: float,
                skip_buffers: bool = False) -> None:
    """One EMA step ``teacher <- momentum * teacher + (1 - momentum) * student``, in place.

    Floating-point buffers (BN running statistics) follow the same EMA as the parameters (the
    Guided Distillation / Unbiased Teacher choice; mmdet's ``MeanTeacherHook`` skips them by
    default); integer buffers (``num_batches_tracked``) are copied. ``skip_buffers`` leaves
    all teacher buffers untouched.
    """
    _lerp_(teacher, student, 1.0 - momentum, skip_buffers)


@HOOKS.register_module()
class TeacherScheduleHook(MeanTeacherHook):
    """Frozen until ``burn_in_iters``, then a hard copy, then EMA (module docstring).

    With ``burn_in_iters == 0`` there is no hard copy: EMA starts at step ``interval`` from
    the initial teacher. ``before_train`` only checks the model and freezes the teacher's
    parameters (``requires_grad=False``; freeze in the detector's ``__init__`` too under
    DDP, which records the parameters needing gradients before any hook runs).

    Logged through ``runner.message_hub`` after every step: scalars
    ``train/teacher_momentum`` (weight kept by the old teacher: 1.0 untouched, 0.0 hard copy,
    ``momentum`` EMA) and ``train/teacher_updated`` (1.0 if the teacher changed), and the
    runtime info ``'teacher_schedule'`` = :meth:`schedule_state` of the step.

    Args:
        burn_in_iters (int): Optimizer step after which the hard copy happens (25000 for
            COCO, 15000 for Cityscapes in S4M). Defaults to 0.
        momentum (float): Weight of the old teacher in the EMA, ``0 <= m <= 1``.
            Defaults to 0.9996.
        interval (int): EMA every ``interval`` steps after burn-in. Defaults to 1.
        skip_buffers (bool): Leave teacher buffers out of the EMA (the hard copy still
            copies them). Defaults to False.
        freeze_teacher (bool): Freeze the teacher's parameters in ``before_train``.
            Defaults to True.
    """

    priority = 'NORMAL'  # before the calibration hooks (LOW) and CheckpointHook (VERY_LOW)

    def __init__(self,
                 burn_in_iters: int = 0,
                 momentum: float = 0.9996,
                 interval: int = 1,
                 skip_buffers: bool = False,
                 freeze_teacher: bool = True) -> None:
        # MeanTeacherHook.__init__ is not called: it asserts 0 < momentum < 1 in its own
        # (student-weight) convention; the attributes are the same.
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

    # ----------------------------------------------------- the schedule, from the step
    def update_at(self, step: int) -> Optional[str]:
        """``'copy'``, ``'ema'`` or ``None``: what happens to the teacher after ``step``."""
        if step == self.burn_in_iters and self.burn_in_iters > 0:
            return 'copy'
        if step > self.burn_in_iters and (step - self.burn_in_iters) % self.interval == 0:
            return 'ema'
        return None

    def num_ema_updates(self, step: int) -> int:
        """EMA updates done once ``step`` optimizer steps are done."""
        return max(step - self.burn_in_iters, 0) // self.interval

    def last_update_iter(self, step: int) -> int:
        """The last step ``<= step`` after which the teacher changed; -1 if none (stage-1)."""
        num_ema = self.num_ema_updates(step)
        if num_ema:
            return self.burn_in_iters + num_ema * self.interval
        return self.burn_in_iters if 0 < self.burn_in_iters <= step else -1

    def schedule_state(self, step: int) -> Dict:
        """The schedule once ``step`` optimizer steps are done (message-hub mirror)."""
        return dict(burned_in=step >= self.burn_in_iters,
                    last_update_iter=self.last_update_iter(step),
                    num_ema_updates=self.num_ema_updates(step),
                    burn_in_iters=self.burn_in_iters)

    def _publish(self, runner, step: int) -> None:
        # resumed=True like before: a checkpoint's message hub then marks the key resumable,
        # and update_info asserts the flag never changes. The value is overwritten here.
        runner.message_hub.update_info(MESSAGE_HUB_INFO_KEY, self.schedule_state(step))

    # ----------------------------------------------------------------------- hooks
    def momentum_update(self, model: nn.Module, momentum: float) -> None:
        """mmdet's convention: ``teacher <- (1 - momentum) * teacher + momentum * student``
        (``momentum`` weighs the student), with :func:`ema_update_`'s buffer policy."""
        _lerp_(model.teacher, model.student, momentum, self.skip_buffers)

    def before_train(self, runner) -> None:
        """Check the model and freeze the teacher; the teacher's weights are not touched."""
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
        self._publish(runner, runner.iter)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """Apply the schedule after optimizer step ``runner.iter + 1``."""
        step = runner.iter + 1
        model = unwrap_model(runner.model)
        update = self.update_at(step)
        if update == 'copy':
            hard_copy_(model.teacher, model.student)
            print_log(f'TeacherScheduleHook: burn-in over, copied student -> teacher after '
                      f'step {step}.', logger='current', level=logging.INFO)
        elif update == 'ema':
            self.momentum_update(model, 1.0 - self.momentum)
        kept = {'copy': 0.0, 'ema': self.momentum, None: 1.0}[update]
        runner.message_hub.update_scalar('train/teacher_momentum', kept)
        runner.message_hub.update_scalar('train/teacher_updated', float(update is not None))
        self._publish(runner, step)
