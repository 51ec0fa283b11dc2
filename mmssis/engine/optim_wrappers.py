"""Optimizer wrappers that skip non-finite (NaN/inf) updates instead of corrupting weights.

One NaN or inf loss, back-propagated and stepped, writes NaN into every weight the
optimizer touches; with mmengine's plain ``OptimWrapper`` the run then continues silently
with a dead model. :class:`SkipNonFiniteOptimWrapper` checks the loss before backward (and
optionally the gradients before the optimizer step), skips the update if it is not finite,
counts it and logs it; ``max_consecutive`` skipped iterations in a row mean the run has
diverged, and it raises :class:`NonFiniteLossError`. ``tools/train.py`` catches that error,
saves ``nonfinite_iter_{N}.pth`` (the last good weights) and exits non-zero
(:func:`save_nonfinite_checkpoint`).

Config::

    optim_wrapper = dict(type='SkipNonFiniteOptimWrapper', max_consecutive=10,
                         optimizer=dict(type='SGD', lr=0.02, momentum=0.9),
                         clip_grad=dict(max_norm=10.0))

With AMP use ``type='SkipNonFiniteAmpOptimWrapper'`` (``tools/train.py --amp`` replaces
the type with mmengine's plain ``AmpOptimWrapper``, which has no skip counter; set the AMP
type in the config instead of passing ``--amp``).

Distributed runs: whether the loss is finite is all-reduced (max over ranks) so every rank
skips the same iterations; a rank that skipped ``backward`` alone would leave the others
waiting in DDP's gradient all-reduce. Gradients are already identical on all ranks after
DDP's all-reduce, so the gradient check needs no extra communication.
"""
import logging
import os.path as osp
import sys
from typing import Dict, Optional

import torch
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmssis.registry import OPTIM_WRAPPERS

#: Message-hub scalar holding the number of skipped updates so far (logged every step).
SKIPPED_SCALAR = 'train/nonfinite_skipped'
#: Key of the skip count in the optim wrapper state dict (restored on resume).
STATE_KEY = 'nonfinite_skipped'


class NonFiniteLossError(FloatingPointError):
    """Training produced ``consecutive`` non-finite losses/gradients in a row.

    Attributes:
        consecutive: Number of skipped iterations in a row.
        last_loss: The last loss value seen (``nan``, ``inf`` or finite when the gradients
            were the non-finite part).
        iteration: 1-based iteration of the last skipped update.
    """

    def __init__(self, message: str, consecutive: int, last_loss: float,
                 iteration: int) -> None:
        super().__init__(message)
        self.consecutive = consecutive
        self.last_loss = last_loss
        self.iteration = iteration


def _grads_finite(optimizer: torch.optim.Optimizer) -> bool:
    """Whether every gradient of ``optimizer``'s parameters is finite (exact, no norm)."""
    flags = [torch.isfinite(p.grad).all() for group in optimizer.param_groups
             for p in group['params'] if p.grad is not None]
    return bool(torch.stack(flags).all()) if flags else True


class _SkipNonFiniteMixin:
    """Skip logic shared by the plain and the AMP wrapper (mixed in before mmengine's)."""

    def _init_skip(self, max_consecutive: int, check_grads: bool) -> None:
        if int(max_consecutive) < 1:
            raise ValueError(f'max_consecutive must be >= 1, got {max_consecutive}')
        self.max_consecutive = int(max_consecutive)
        self.check_grads = bool(check_grads)
        self.consecutive_skipped = 0
        self.total_skipped = 0
        self._grads_were_finite = True

    # ---------------------------------------------------------------- update
    def update_params(self, loss: torch.Tensor, step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        """``scale -> backward -> step -> zero_grad``, skipped for non-finite values.

        Args:
            loss: Scalar total loss of the iteration.
            step_kwargs: Arguments of ``optimizer.step``.
            zero_kwargs: Arguments of ``optimizer.zero_grad``.

        Raises:
            NonFiniteLossError: ``max_consecutive`` updates in a row were skipped.
        """
        step_kwargs = step_kwargs or {}
        zero_kwargs = zero_kwargs or {}
        loss_value = float(loss.detach().float().sum())
        if not self._finite_on_all_ranks(loss):
            # No backward: nothing non-finite reaches the gradients. Keep the
            # accumulation counter in step with the iterations and drop what was
            # accumulated so far in this window (it would be stepped with a hole).
            self._inner_count += 1
            self.zero_grad(**zero_kwargs)
            self._record_skip(loss_value, 'loss')
            return
        loss = self.scale_loss(loss)
        self.backward(loss)
        if self.should_update():
            self._grads_were_finite = True
            self.step(**step_kwargs)
            self.zero_grad(**zero_kwargs)
            if not self._grads_were_finite:
                self._record_skip(loss_value, 'gradients')
                return
        self._record_good()

    def _finite_on_all_ranks(self, loss: torch.Tensor) -> bool:
        bad = torch.logical_not(torch.isfinite(loss.detach()).all()).float().reshape(1)
        if get_world_size() > 1:
            all_reduce(bad, op='max')
        return not bool(bad.item())

    # ---------------------------------------------------------------- bookkeeping
    def _iteration(self) -> int:
        """1-based iteration being trained (``RuntimeInfoHook`` keeps ``iter`` 0-based)."""
        it = self.message_hub.get_info('iter')
        return int(it) + 1 if it is not None else -1

    def _record_good(self) -> None:
        self.consecutive_skipped = 0
        self.message_hub.update_scalar(SKIPPED_SCALAR, float(self.total_skipped))

    def _record_skip(self, loss_value: float, what: str) -> None:
        self.consecutive_skipped += 1
        self.total_skipped += 1
        self.message_hub.update_scalar(SKIPPED_SCALAR, float(self.total_skipped))
        it = self._iteration()
        print_log(
            f'{type(self).__name__}: non-finite {what} at iteration {it} '
            f'(loss={loss_value}); skipped the update ({self.consecutive_skipped}/'
            f'{self.max_consecutive} in a row, {self.total_skipped} in total).',
            logger='current', level=logging.WARNING)
        if self.consecutive_skipped >= self.max_consecutive:
            raise NonFiniteLossError(
                f'{self.consecutive_skipped} consecutive non-finite losses/gradients '
                f'(iterations {it - self.consecutive_skipped + 1}..{it}, last loss='
                f'{loss_value}, last non-finite part: {what}); the weights are those of '
                f'the last good update. Check the learning rate (too high, warm-up too '
                f'short), the data (degenerate boxes/masks or corrupt images: '
                f'CheckedCocoDataset with check_files/verify_images reports them) and AMP '
                f'(fp16 overflow: use loss_scale="dynamic" or train without AMP).',
                consecutive=self.consecutive_skipped, last_loss=loss_value, iteration=it)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        state = super().state_dict()
        state[STATE_KEY] = int(self.total_skipped)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        self.total_skipped = int(state_dict.pop(STATE_KEY, 0))
        super().load_state_dict(state_dict)


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteOptimWrapper(_SkipNonFiniteMixin, OptimWrapper):
    """``OptimWrapper`` that skips updates whose loss (or gradient) is NaN/inf.

    A skipped iteration does no ``backward`` (non-finite loss) or no ``optimizer.step``
    (non-finite gradient after clipping), zeroes the gradients, logs a warning with the
    iteration and updates the message-hub scalar ``train/nonfinite_skipped`` (total skips
    so far, also kept in the optimizer state dict across resumes). A finite update resets
    the consecutive count. With gradient accumulation a skip drops the gradients
    accumulated so far in the current window.

    Args:
        max_consecutive: Raise :class:`NonFiniteLossError` after this many skipped
            iterations in a row.
        check_grads: Also skip when a gradient is non-finite after clipping (a finite loss
            can still give inf gradients, e.g. ``sqrt`` at 0).
        **kwargs: ``OptimWrapper`` arguments (``optimizer``, ``clip_grad``, ...).
    """

    def __init__(self, max_consecutive: int = 10, check_grads: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_skip(max_consecutive, check_grads)

    def step(self, **kwargs) -> None:
        """Clip, then ``optimizer.step`` unless a gradient is non-finite."""
        if self.clip_grad_kwargs:
            self._clip_grad()
        if self.check_grads and not _grads_finite(self.optimizer):
            self._grads_were_finite = False
            return
        self.optimizer.step(**kwargs)


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteAmpOptimWrapper(_SkipNonFiniteMixin, AmpOptimWrapper):
    """``AmpOptimWrapper`` that skips iterations with a non-finite loss.

    Gradients are not checked: overflowing *scaled* fp16 gradients are expected and
    already handled by the ``GradScaler`` (it skips that step and lowers the scale). A
    loss that is itself NaN/inf is skipped and counted as in
    :class:`SkipNonFiniteOptimWrapper`.

    Args:
        max_consecutive: Raise :class:`NonFiniteLossError` after this many skipped
            iterations in a row.
        **kwargs: ``AmpOptimWrapper`` arguments (``loss_scale``, ``dtype``, ...).
    """

    def __init__(self, max_consecutive: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_skip(max_consecutive, check_grads=False)


def save_nonfinite_checkpoint(runner, err: NonFiniteLossError) -> int:
    """Save ``nonfinite_iter_{N}.pth`` after a :class:`NonFiniteLossError`, say so, exit code.

    Called by ``tools/train.py`` when ``runner.train()`` raises. ``N`` is the number of
    completed iterations; the checkpoint holds the last good weights (skipped updates
    changed nothing) and resumes at iteration ``N + 1`` (e.g. after lowering the LR).
    ``Runner.save_checkpoint`` writes on rank 0 only.

    Args:
        runner: The mmengine runner that raised.
        err: The error.

    Returns:
        The process exit code (1).
    """
    filename = f'nonfinite_iter_{runner.iter}.pth'
    # meta: completed iterations (mmengine's default would record runner.iter + 1).
    runner.save_checkpoint(runner.work_dir, filename,
                           meta=dict(iter=runner.iter, epoch=runner.epoch))
    path = osp.join(runner.work_dir, filename)
    if is_main_process():
        msg = (f'Training stopped: {err}\nSaved the last good state to {path} '
               f'(resume with --resume {path} after fixing the cause).')
        print_log(msg, logger='current', level=logging.ERROR)
        print(msg, file=sys.stderr, flush=True)
    return 1


__all__ = ['NonFiniteLossError', 'SkipNonFiniteOptimWrapper', 'SkipNonFiniteAmpOptimWrapper',
           'save_nonfinite_checkpoint', 'SKIPPED_SCALAR']
