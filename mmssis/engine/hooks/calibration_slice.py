"""What the calibration hooks share: a labelled slice, a schedule, a state that resumes.

:class:`ConfidenceCalibrationHook` (per-class score thresholds) and :class:`SamBenefitHook`
(per-class SAM refinement decisions) both run the teacher on a small labelled
*calibration slice* every ``interval`` optimizer steps and turn what they measure into a
setting of the model. :class:`CalibrationSliceHook` owns the parts that are the same:

* **When**: after optimizer step ``step = runner.iter + 1`` if ``step >= start_iter`` and
  ``(step - start_iter) % interval == 0``, and in ``before_train`` when ``at_start`` (the
  stage-1 teacher is already meaningful at iteration 0), never after the last step (no step
  would use it); a teacher that did not change since
  the last measurement (frozen before burn-in) is not measured again. "Changed" is read from
  :class:`TeacherScheduleHook`'s ``last_update_iter`` (its state in the message hub, published
  before this hook runs); without that hook every interval measures.
* **Where**: up to ``max_images`` images of the slice over all ranks (each rank its sampler
  shard, ``ceil(max_images / world_size)``).
* **Resume**: the state goes into ``checkpoint['meta'][ckpt_key]`` and is adopted in
  ``before_train`` only when the run resumes (``runner.iter > 0``): a ``load_from``
  starts fresh. A resumed state is applied before
  the first iteration and not re-measured (it was measured with the saved teacher).
"""
import copy
import logging
import math
import os
import os.path as osp
from typing import Callable, Dict, Iterator, List, Optional, Union

import numpy as np
import torch
from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmssis.utils.misc import unwrap_model
from .teacher_schedule_hook import MESSAGE_HUB_INFO_KEY as TEACHER_SCHEDULE_KEY


def teacher_update_iter(runner) -> Optional[int]:
    """Optimizer step of the teacher's last update (``-1``: never), as
    :class:`TeacherScheduleHook` publishes it; ``None`` when no schedule hook does."""
    state = runner.message_hub.get_info(TEACHER_SCHEDULE_KEY)
    return None if state is None else int(state['last_update_iter'])


class CalibrationSliceHook(Hook):
    """Base of the hooks that measure the teacher on a labelled slice (module docstring).

    Subclasses set ``ckpt_key`` and implement :meth:`_reset_state`, :meth:`state_dict`,
    :meth:`load_state_dict`, :meth:`_measured` (whether the state holds a measurement),
    :meth:`_apply` (state -> model) and :meth:`measure` (one measurement after ``step``
    optimizer steps).

    Args:
        dataloader: Dataloader config (like ``val_dataloader``; its pipeline must load GT
            masks), the name of a top-level dataloader config of the run's config (e.g.
            ``'calibration_dataloader'``; read from ``runner.cfg``), or a built
            ``DataLoader``. ``None`` reuses ``runner.val_dataloader``.
        interval: Measure every this many optimizer steps.
        max_images: Images per measurement, over all ranks.
        start_iter: First step at which to measure (e.g. the burn-in end).
        at_start: Measure in ``before_train``.
    """

    priority = 'LOW'  # after TeacherScheduleHook (NORMAL), before CheckpointHook
    ckpt_key = ''

    def __init__(self,
                 dataloader: Optional[Union[dict, str, object]] = None,
                 interval: int = 1000,
                 max_images: int = 200,
                 start_iter: int = 0,
                 at_start: bool = True) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if max_images < 1:
            raise ValueError(f'max_images must be >= 1, got {max_images}')
        self.dataloader_cfg = dataloader
        self.interval = int(interval)
        self.max_images = int(max_images)
        self.start_iter = int(start_iter)
        self.at_start = at_start
        self._loader = None
        self._loaded_state: Optional[Dict] = None
        self._teacher_iter: Optional[int] = None  # teacher_update_iter at last measurement
        self._reset_state()

    # ------------------------------------------------------------------ subclass API
    def _reset_state(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> Dict:
        """Plain-Python state (safe for ``weights_only`` checkpoint loading)."""
        raise NotImplementedError

    def load_state_dict(self, state: Dict) -> None:
        raise NotImplementedError

    def _measured(self) -> bool:
        raise NotImplementedError

    def _apply(self, runner) -> None:
        raise NotImplementedError

    def measure(self, runner, step: int) -> Dict:
        """One measurement after ``step`` optimizer steps; returns the new state."""
        raise NotImplementedError

    # ------------------------------------------------------------------ hooks
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[self.ckpt_key] = self.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Remember the saved state; ``before_train`` adopts it if the run resumes.

        mmengine calls this for ``load_from`` and ``resume`` alike and sets
        ``runner.iter`` only afterwards.
        """
        state = (checkpoint.get('meta') or {}).get(self.ckpt_key)
        self._loaded_state = dict(state) if state is not None else None

    def before_train(self, runner) -> None:
        model = unwrap_model(runner.model)
        if not isinstance(getattr(model, 'teacher', None), torch.nn.Module):
            raise AttributeError(f'{type(self).__name__} needs model.teacher (nn.Module)')
        self._reset_state()
        self._teacher_iter = None
        if runner.iter > 0 and self._loaded_state is not None:
            self.load_state_dict(self._loaded_state)
            print_log(f'{type(self).__name__}: restored the state of iter '
                      f'{self.state_dict().get("iter")}: {self._restored_summary()}',
                      logger='current')
        self._loaded_state = None
        self._apply(runner)
        if self.at_start and not self._measured():
            self._measure_and_remember(runner, runner.iter)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        step = runner.iter + 1
        if step >= runner.max_iters:
            return  # no training step follows: nothing would use the measurement
        if step >= self.start_iter and (step - self.start_iter) % self.interval == 0:
            teacher_iter = teacher_update_iter(runner)
            if (self._measured() and teacher_iter is not None
                    and teacher_iter == self._teacher_iter):
                print_log(f'{type(self).__name__} @ iter {step}: teacher unchanged since '
                          f'the last measurement, state kept.', logger='current')
                return
            self._measure_and_remember(runner, step)

    def _restored_summary(self) -> str:
        return str(self.state_dict())

    def _measure_and_remember(self, runner, step: int) -> Dict:
        state = self.measure(runner, step)
        self._teacher_iter = teacher_update_iter(runner)
        return state

    # ------------------------------------------------------------------ the slice
    def _calibration_loader(self, runner):
        if self._loader is None:
            cfg = self.dataloader_cfg
            if isinstance(cfg, str):  # a top-level dataloader entry of the run's config
                if cfg not in runner.cfg:
                    raise KeyError(f'{type(self).__name__}: dataloader={cfg!r} is not a key '
                                   'of the config')
                cfg = runner.cfg[cfg]
            if cfg is None:
                self._loader = runner.val_dataloader
            elif isinstance(cfg, dict):
                self._loader = runner.build_dataloader(copy.deepcopy(cfg), seed=runner.seed)
            else:
                self._loader = cfg
        return self._loader

    def _batches(self, runner) -> Iterator[dict]:
        """This rank's batches, cut to its share of ``max_images``."""
        limit = math.ceil(self.max_images / get_world_size())
        seen = 0
        for data in self._calibration_loader(runner):
            take = min(len(data['inputs']), limit - seen)
            yield dict(data, inputs=data['inputs'][:take],
                       data_samples=data['data_samples'][:take])
            seen += take
            if seen >= limit:
                break

    def _class_names(self, num_classes: int) -> List[str]:
        dataset = getattr(self._loader, 'dataset', None)
        names = list((getattr(dataset, 'metainfo', None) or {}).get('classes') or [])
        if len(names) != num_classes:
            names = [str(i) for i in range(num_classes)]
        return names

    def _publish(self, runner, step: int, scalars: Dict[str, float], message: str,
                 stem: str, render: Callable[[str], np.ndarray]) -> None:
        """Report a measurement: ``scalars`` into the message hub and ``message`` into the
        log on every rank; on the main process the scalars to the visualisation backends
        and the figure ``render(path)`` as ``{work_dir}/calibration/{stem}_iter_{step}.png``
        and as image ``self.vis_name`` at ``step``.

        The default image names have no ``/``: ``LocalVisBackend`` writes
        ``{name}_{step}.png`` and would fail silently on a missing sub-folder.
        """
        for key, value in scalars.items():
            runner.message_hub.update_scalar(key, value)
        runner.logger.info(message)
        if not is_main_process():
            return
        runner.visualizer.add_scalars(scalars, step=step)
        out_dir = osp.join(runner.work_dir, 'calibration')
        os.makedirs(out_dir, exist_ok=True)
        try:
            image = render(osp.join(out_dir, f'{stem}_iter_{step}.png'))
        except ImportError as err:  # matplotlib is optional for training itself
            print_log(f'{type(self).__name__}: no plot ({err})', logger='current',
                      level=logging.WARNING)
            return
        runner.visualizer.add_image(self.vis_name, image, step=step)
