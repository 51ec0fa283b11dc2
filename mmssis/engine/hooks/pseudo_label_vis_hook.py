"""Draw what the student is trained on: teacher pseudo-masks, SAM-refined masks, ARP mix.

Every ``interval`` training iterations :class:`PseudoLabelVisHook` sends one image to the
runner's visualizer (``LocalVisBackend``: ``<work_dir>/<timestamp>/vis_data/vis_image/
<name>_<step>.png``; ``TensorboardVisBackend``: an image tag ``<name>``). One row per
unlabelled image, side by side:

1. ``teacher``: the teacher view with the pseudo-masks that survived score / mask-area
   filtering (before SAM);
2. ``sam``: the same view with the SAM-refined masks (only when the detector has a
   ``sam_refiner``);
3. ``student``: the (ARP-mixed) student input with its projected pseudo-masks (by default
   only when the detector has an ``instance_mixer``).

All panels come from one ``PseudoLabelRecord`` of the detector's pseudo-label path
(:meth:`SemiMaskDetector.pseudo_label`), in one of two modes:

* **batch mode** (``dataset=None``, default): the record of the training step itself. The
  hook asks the detector to keep the next step's record (``keep_next_record``) and takes it
  afterwards (``pop_record``); nothing is recomputed.
* **fixed mode** (``dataset=<dataset config>``): the first ``num_images`` images of that
  (unlabelled) data set go through ``pseudo_label`` with the current teacher, so the same
  images can be followed over training. The global ``random`` / numpy / torch generators
  are restored afterwards and the instance mixer is run on a copy; a SAM refiner's own
  prompt-sampling generator does advance.

Drawing is in :mod:`mmssis.visualization.pseudo_labels`.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Sequence, Union

from mmdet.visualization import DetLocalVisualizer
from mmengine.dataset import pseudo_collate
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmssis.models.utils import view_normalization
from mmssis.registry import DATASETS, HOOKS
from mmssis.utils.misc import unwrap_model
from mmssis.visualization import (draw_pseudo_label_grid, make_drawer, preserved_rng,
                                  student_title)

DATA_BATCH = Optional[Union[dict, tuple, list]]


def fixed_record(model, dataset, indices: Sequence[int], copy_mixer: bool = True):
    """The ``PseudoLabelRecord`` of unlabelled items ``indices`` of ``dataset`` with the
    model's current teacher (global RNGs restored; the mixer runs on a copy).

    Args:
        model: The (possibly wrapped) ``SemiMaskDetector``.
        dataset: A data set whose pipeline ends in ``MultiBranch`` (``unsup_teacher`` /
            ``unsup_student``).
        indices: Items to load.
        copy_mixer: Mix with a deep copy of the instance mixer, so that its own generator
            does not advance (during training).
    """
    model = unwrap_model(model)
    was_training = model.training
    try:
        with preserved_rng():
            data = unlabelled_batch(model, dataset, indices)
            mixer = model.instance_mixer
            mix = copy.deepcopy(mixer) if copy_mixer and mixer is not None else True
            return model.pseudo_label(data['inputs']['unsup_teacher'],
                                      data['data_samples']['unsup_teacher'],
                                      data['inputs']['unsup_student'],
                                      data['data_samples']['unsup_student'], mix=mix)
    finally:
        model.train(was_training)


def unlabelled_batch(model, dataset, indices: Sequence[int]
                     ) -> Dict[str, Any]:
    """Load, collate and preprocess unlabelled items as the training loop would.

    Args:
        model: The (possibly wrapped) semi detector; its ``MultiBranchDataPreprocessor``
            normalises, pads and moves the batch to the model's device.
        dataset: A data set whose pipeline ends in ``MultiBranch`` with ``unsup_teacher``
            and ``unsup_student`` branches (the semi configs' unlabelled data set).
        indices: Items to load.

    Returns:
        ``{'inputs': {branch: (B, 3, H_pad, W_pad)}, 'data_samples': {branch: [...]}}``
        for the unlabelled branches.
    """
    batch = pseudo_collate([dataset[i] for i in indices])
    # Unlabelled items carry ``None`` for the ``sup`` branch; keep only filled branches.
    for key in ('inputs', 'data_samples'):
        batch[key] = {b: v for b, v in batch[key].items()
                      if all(x is not None for x in v)}
    return unwrap_model(model).data_preprocessor(batch, True)


# ----------------------------------------------------------------------------------------
# the hook
@HOOKS.register_module()
class PseudoLabelVisHook(Hook):
    """Periodically visualise the pseudo-labels of a ``SemiMaskDetector`` (see module doc).

    Args:
        interval: Draw after every ``interval``-th training iteration.
        num_images: Unlabelled images (rows) per drawing.
        show_student: Add the student-input panel: ``None`` (default) only when the
            detector has an ``instance_mixer`` (the panel then shows the ARP mix),
            ``True`` always (projected pseudo-labels on the strong view), ``False`` never.
        dataset: None for batch mode; a data set config (e.g. the config's unlabelled
            data set, pipeline ending in ``MultiBranch``) or a data set for fixed mode.
        name: Image name in the vis backends.
        gap: Pixels between panels.
        title_size: Font size of the panel titles.
        drawer_cfg: Extra ``DetLocalVisualizer`` arguments (``alpha``, ``line_width``...).
    """

    priority = 'LOW'

    def __init__(self, interval: int = 500, num_images: int = 2,
                 show_student: Optional[bool] = None,
                 dataset: Union[dict, Any, None] = None, name: str = 'pseudo_labels',
                 gap: int = 4, title_size: int = 10,
                 drawer_cfg: Optional[dict] = None) -> None:
        if interval <= 0 or num_images <= 0:
            raise ValueError(f'interval and num_images must be positive, got {interval}, '
                             f'{num_images}')
        self.interval = int(interval)
        self.num_images = int(num_images)
        self.show_student = show_student
        self._dataset_cfg = dataset
        self._dataset = None if isinstance(dataset, dict) else dataset
        self.name = name
        self.gap = int(gap)
        self.title_size = int(title_size)
        self.drawer_cfg = dict(drawer_cfg or {})
        self._drawer: Optional[DetLocalVisualizer] = None
        self._warned = False

    @property
    def fixed(self) -> bool:
        """Fixed-set mode (own data set) rather than the training batch."""
        return self._dataset_cfg is not None

    def _should_draw(self, runner) -> bool:
        return is_main_process() and self.every_n_train_iters(runner, self.interval)

    def _get_drawer(self, runner) -> DetLocalVisualizer:
        meta = getattr(runner.visualizer, 'dataset_meta', None) or {}
        if not meta:
            meta = getattr(runner.train_dataloader.dataset, 'metainfo', None) or {}
        if self._drawer is None:
            self._drawer = make_drawer(meta, name=f'pseudo_label_vis_{id(self)}',
                                       **self.drawer_cfg)
        self._drawer.dataset_meta = dict(meta)
        return self._drawer

    def _student_panel(self, model) -> bool:
        if self.show_student is None:
            return getattr(model, 'instance_mixer', None) is not None
        return bool(self.show_student)

    def before_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        if self.fixed or not self._should_draw(runner):
            return
        model = unwrap_model(runner.model)
        if hasattr(model, 'keep_next_record'):
            model.keep_next_record()

    def after_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        if not self._should_draw(runner):
            return
        model = unwrap_model(runner.model)
        if self.fixed:
            if self._dataset is None:
                self._dataset = DATASETS.build(self._dataset_cfg)
            record = fixed_record(model, self._dataset,
                                  range(min(self.num_images, len(self._dataset))))
        else:
            record = model.pop_record() if hasattr(model, 'pop_record') else None
        if record is None:
            self._warn_empty(runner)
            return
        grid = draw_pseudo_label_grid(record, view_normalization(model.data_preprocessor),
                                      self._get_drawer(runner), self.num_images,
                                      self._student_panel(model), self.gap, self.title_size,
                                      titles=dict(student=student_title(model)))
        # runner.iter + 1: the step the LoggerHook logs this iteration's scalars at.
        runner.visualizer.add_image(self.name, grid, step=runner.iter + 1)

    def _warn_empty(self, runner) -> None:
        if self._warned:
            return
        self._warned = True
        print_log(f'{type(self).__name__}: the detector kept no pseudo-label record at '
                  f'iteration {runner.iter + 1}; nothing drawn. Batch mode needs a '
                  'SemiMaskDetector (keep_next_record / pop_record); or use `dataset=` for '
                  'fixed mode.', logger='current', level=30)
