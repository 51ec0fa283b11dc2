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

Where the data comes from (two modes):

* **batch mode** (``dataset=None``, default): the detector's own training step, through an
  opt-in *capture dict*. Before an iteration that must be drawn, the hook sets
  ``model._vis_capture = {}``; ``SemiMaskDetector`` fills it while computing its loss
  (keys in :data:`CAPTURE_KEYS`) and the hook draws and clears it afterwards. The first
  ``num_images`` unlabelled images of the current batch are drawn; nothing is recomputed.
* **fixed mode** (``dataset=<dataset config>``): the first ``num_images`` images of that
  (unlabelled) data set are run through :func:`capture_pseudo_labels` with the current
  teacher, so the same images can be followed over training. The global ``random`` /
  numpy / torch generators are restored afterwards and the instance mixer is run on a
  copy; a SAM refiner's own prompt-sampling generator does advance.

:func:`capture_pseudo_labels`, :func:`unlabelled_batch` and :func:`draw_pseudo_label_grid`
are shared with ``tools/analysis_tools/browse_pseudo_labels.py``.
"""
from __future__ import annotations

import contextlib
import copy
import random
import warnings
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import mmcv
import numpy as np
import torch
from mmdet.structures import DetDataSample, SampleList
from mmdet.structures.bbox import BaseBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmdet.visualization import DetLocalVisualizer
from mmengine.dataset import pseudo_collate
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.structures import InstanceData
from torch import Tensor

from mmssis.models.utils.sam_pseudo_refiner import denormalize_views
from mmssis.registry import DATASETS, HOOKS

DATA_BATCH = Optional[Union[dict, tuple, list]]

#: Attribute of the detector holding the capture dict (None: capture off).
CAPTURE_ATTR = '_vis_capture'
#: Keys the detector writes into the capture dict. ``teacher_instances`` /
#: ``refined_instances``: per image ``InstanceData`` (bool ``masks`` (N, h, w) at the
#: teacher ``img_shape``, ``bboxes`` xyxy, ``labels``, ``scores``) before / after SAM
#: (``refined_instances`` only with a SAM refiner); ``teacher_inputs`` /
#: ``student_inputs``: (B, 3, H_pad, W_pad) normalised images; ``teacher_samples`` /
#: ``student_samples``: their data samples (student ``gt_instances`` = the pseudo-labels
#: the student is trained on, after projection and mixing).
CAPTURE_KEYS = ('teacher_inputs', 'teacher_samples', 'teacher_instances',
                'refined_instances', 'student_inputs', 'student_samples')

PANEL_TITLES = dict(teacher='teacher', sam='SAM-refined', student='student')


# ----------------------------------------------------------------------------------------
# getting the data
def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if is_model_wrapper(model) else model


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore the global ``random`` / numpy / torch (CPU) generator states on exit.

    Drawing (mmdet's ``jitter_color`` draws from numpy's global generator) and running a
    data pipeline must not change the random stream training sees.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.random.get_rng_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.random.set_rng_state(torch_state)


@torch.no_grad()
def capture_pseudo_labels(model: torch.nn.Module, inputs: Dict[str, Tensor],
                          samples: Dict[str, SampleList], use_sam: bool = True,
                          use_mixer: bool = True, copy_mixer: bool = False
                          ) -> Dict[str, Any]:
    """Run a ``SemiMaskDetector``'s pseudo-label path on a batch, without any loss.

    Mirrors ``SemiMaskDetector.loss`` up to the student loss: teacher prediction on the
    weak view -> score / mask filtering -> optional SAM refinement -> projection into the
    student view -> optional instance mixing.

    Args:
        model: A (possibly wrapped) ``SemiMaskDetector``.
        inputs: Preprocessed multi-branch inputs with ``unsup_teacher`` and
            ``unsup_student`` (B, 3, H_pad, W_pad), normalised.
        samples: The matching data samples (modified in place like in training: teacher
            samples get the pseudo-labels as ``gt_instances``, student samples the
            projected ones).
        use_sam: Refine with the model's ``sam_refiner`` when it has one.
        use_mixer: Mix with the model's ``instance_mixer`` when it has one.
        copy_mixer: Run a deep copy of the mixer so that its own generator does not
            advance (used during training).

    Returns:
        A capture dict with the keys of :data:`CAPTURE_KEYS` (``refined_instances`` only
        when SAM ran).
    """
    # Shared with the pseudo-label quality evaluation: teacher + filter (+ SAM) stages.
    from mmssis.evaluation.pseudo_label_quality import pseudo_instances_with_refinement
    model = _unwrap(model)
    t_inputs, t_samples = inputs['unsup_teacher'], samples['unsup_teacher']
    refiner = getattr(model, 'sam_refiner', None) if use_sam else None
    model.teacher.eval()
    teacher, refined = pseudo_instances_with_refinement(model, t_inputs, t_samples, refiner)
    for sample, inst in zip(t_samples, refined if refined is not None else teacher):
        sample.gt_instances = inst
    s_inputs = inputs['unsup_student']
    s_samples = model.project_pseudo_instances(t_samples, samples['unsup_student'])
    mixer = getattr(model, 'instance_mixer', None) if use_mixer else None
    if mixer is not None:
        mixer = copy.deepcopy(mixer) if copy_mixer else mixer
        s_inputs, s_samples = mixer(s_inputs, s_samples,
                                    data_preprocessor=model.data_preprocessor)
    capture = dict(teacher_inputs=t_inputs, teacher_samples=t_samples,
                   teacher_instances=teacher, student_inputs=s_inputs,
                   student_samples=s_samples)
    if refined is not None:
        capture['refined_instances'] = refined
    return capture


def unlabelled_batch(model: torch.nn.Module, dataset, indices: Sequence[int]
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
    return _unwrap(model).data_preprocessor(batch, True)


# ----------------------------------------------------------------------------------------
# drawing
def _masks_array(masks, shape: Sequence[int]) -> np.ndarray:
    """``(N, h, w)`` bool array of any mask container, cropped to ``shape`` (h, w)."""
    if isinstance(masks, (BitmapMasks, PolygonMasks)):
        arr = masks.to_ndarray()
    elif isinstance(masks, Tensor):
        arr = masks.detach().cpu().numpy()
    else:
        arr = np.asarray(masks)
    h, w = shape[:2]
    # Mask2Former students keep masks padded to batch_input_shape: cut the padding.
    return arr[:, :h, :w].astype(bool)


def drawable_instances(inst: InstanceData, img_shape: Sequence[int]) -> InstanceData:
    """The fields mmdet's visualizer draws, on CPU, masks cropped to ``img_shape``."""
    out = InstanceData()
    boxes = inst.bboxes.tensor if isinstance(inst.bboxes, BaseBoxes) else inst.bboxes
    out.bboxes = torch.as_tensor(boxes).detach().float().cpu()
    out.labels = inst.labels.detach().cpu()
    if 'scores' in inst:
        out.scores = inst.scores.detach().float().cpu()
    out.masks = _masks_array(inst.masks, img_shape)
    return out


def draw_panel(drawer: DetLocalVisualizer, image: np.ndarray, instances: InstanceData,
               title: Optional[str] = None, title_size: int = 10) -> np.ndarray:
    """Draw instances (masks, boxes, ``class: score``) and a title onto ``image``.

    Args:
        drawer: A ``DetLocalVisualizer`` (its ``dataset_meta`` names / colours classes).
        image: (h, w, 3) uint8 RGB image.
        instances: Output of :func:`drawable_instances` (masks at (h, w)).
        title: Text in the top-left corner.
        title_size: Font size of the title.

    Returns:
        The drawn (h, w, 3) uint8 RGB image.
    """
    drawn = image
    if len(instances) > 0:
        sample = DetDataSample(gt_instances=instances)
        # Drawn in memory only: the drawer has no vis backends.
        drawer.add_datasample('panel', image, sample, draw_gt=True, draw_pred=False)
        drawn = drawer.get_image()
    if title:
        drawer.set_image(drawn)
        drawer.draw_texts(title, np.array([2, 2]), font_sizes=title_size, colors='white',
                          vertical_alignments='top',
                          bboxes=dict(facecolor='black', alpha=0.6, pad=1.0,
                                      edgecolor='none'))
        drawn = drawer.get_image()
    return drawn


def panel_kinds(capture: Dict[str, Any], show_student: bool) -> List[str]:
    """Which panels a capture yields: ``teacher`` [, ``sam``] [, ``student``]."""
    kinds = ['teacher']
    if capture.get('refined_instances') is not None:
        kinds.append('sam')
    if show_student and capture.get('student_inputs') is not None:
        kinds.append('student')
    return kinds


def draw_pseudo_label_rows(capture: Dict[str, Any], data_preprocessor,
                           drawer: DetLocalVisualizer, num_images: Optional[int] = None,
                           show_student: bool = True, title_size: int = 10,
                           titles: Optional[Dict[str, str]] = None
                           ) -> List[List[np.ndarray]]:
    """Draw the panels of each captured unlabelled image.

    Args:
        capture: A capture dict (see :data:`CAPTURE_KEYS`).
        data_preprocessor: The detector's preprocessor (to de-normalise the inputs).
        drawer: The visualizer used for drawing.
        num_images: Draw the first this many images (None: all).
        show_student: Add the student panel.
        title_size: Font size of panel titles.
        titles: Panel titles overriding :data:`PANEL_TITLES` (keys ``teacher``, ``sam``,
            ``student``).

    Returns:
        Per image, the list of (h, w, 3) uint8 RGB panels in :func:`panel_kinds` order.
    """
    kinds = panel_kinds(capture, show_student)
    titles = {**PANEL_TITLES, **(titles or {})}
    t_samples = capture['teacher_samples']
    count = len(t_samples) if num_images is None else min(num_images, len(t_samples))
    t_samples = t_samples[:count]
    t_images = denormalize_views(capture['teacher_inputs'][:count], t_samples,
                                 data_preprocessor)
    if 'student' in kinds:
        s_samples = capture['student_samples'][:count]
        s_images = denormalize_views(capture['student_inputs'][:count], s_samples,
                                     data_preprocessor)
    rows = []
    for i in range(count):
        t_shape = t_samples[i].metainfo['img_shape']
        row = []
        for kind in kinds:
            if kind == 'student':
                image, shape = s_images[i], s_samples[i].metainfo['img_shape']
                inst = s_samples[i].gt_instances
            else:
                image, shape = t_images[i], t_shape
                key = 'teacher_instances' if kind == 'teacher' else 'refined_instances'
                inst = capture[key][i]
            row.append(draw_panel(drawer, image, drawable_instances(inst, shape),
                                  titles[kind], title_size))
        rows.append(row)
    return rows


def tile_rows(rows: List[List[np.ndarray]], gap: int = 4, pad_val: int = 255) -> np.ndarray:
    """Tile panels into one image: a row per image, panels left to right.

    Every cell is padded (bottom / right) to the largest panel size and cells are
    separated by ``gap`` pixels of ``pad_val``.

    Returns:
        (rows * (H + gap) - gap, cols * (W + gap) - gap, 3) uint8 RGB.
    """
    cells = [p for row in rows for p in row]
    height = max(p.shape[0] for p in cells)
    width = max(p.shape[1] for p in cells)
    cols = max(len(row) for row in rows)
    out_rows = []
    for row in rows:
        # A per-channel tuple: a scalar would only fill the first channel.
        padded = [mmcv.impad(p, shape=(height + gap, width + gap), pad_val=(pad_val, ) * 3)
                  for p in row]
        padded += [np.full((height + gap, width + gap, 3), pad_val, np.uint8)] * (
            cols - len(row))
        out_rows.append(np.concatenate(padded, axis=1))
    grid = np.concatenate(out_rows, axis=0)
    return np.ascontiguousarray(grid[:grid.shape[0] - gap, :grid.shape[1] - gap])


def draw_rows_quietly(*args, **kwargs) -> List[List[np.ndarray]]:
    """:func:`draw_pseudo_label_rows` with the global RNGs restored afterwards."""
    with preserved_rng(), warnings.catch_warnings():
        # Boxes from masks end at ``x2 = last column + 1`` (== width for a mask touching
        # the border), which mmengine reports as "out of bounds" although it draws fine.
        warnings.filterwarnings('ignore', message='.*out of bounds.*', category=UserWarning)
        return draw_pseudo_label_rows(*args, **kwargs)


def draw_pseudo_label_grid(capture: Dict[str, Any], data_preprocessor,
                           drawer: DetLocalVisualizer, num_images: Optional[int] = None,
                           show_student: bool = True, gap: int = 4,
                           title_size: int = 10,
                           titles: Optional[Dict[str, str]] = None) -> np.ndarray:
    """:func:`draw_pseudo_label_rows` tiled by :func:`tile_rows`.

    Returns:
        One (H, W, 3) uint8 RGB image: a row per image, a column per panel.
    """
    rows = draw_rows_quietly(capture, data_preprocessor, drawer, num_images, show_student,
                             title_size, titles)
    return tile_rows(rows, gap=gap)


def student_title(model) -> str:
    """Title of the student panel: says whether ARP mixed it."""
    return 'student + ARP' if getattr(model, 'instance_mixer', None) is not None else 'student'


def make_drawer(dataset_meta: Optional[dict] = None, name: Optional[str] = None,
                **kwargs) -> DetLocalVisualizer:
    """A backend-less ``DetLocalVisualizer`` for drawing (never the runner's instance)."""
    # Constructed directly (not ``get_instance``): not registered as a global instance,
    # so it never becomes ``Visualizer.get_current_instance()``.
    drawer = DetLocalVisualizer(name=name or 'pseudo_label_drawer', **kwargs)
    drawer.dataset_meta = dict(dataset_meta or {})
    return drawer


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
        # A plain dict attribute (not a module / tensor): invisible to state_dict, EMA,
        # the optimiser and DDP. The detector fills it during this iteration's loss.
        object.__setattr__(_unwrap(runner.model), CAPTURE_ATTR, {})

    def after_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        if not self._should_draw(runner):
            return
        model = _unwrap(runner.model)
        if self.fixed:
            capture = self._fixed_capture(runner, model)
        else:
            capture = getattr(model, CAPTURE_ATTR, None)
            # Switch capturing off again: the captured tensors are freed after drawing.
            object.__setattr__(model, CAPTURE_ATTR, None)
        if not capture or capture.get('teacher_instances') is None:
            self._warn_empty(runner)
            return
        grid = draw_pseudo_label_grid(capture, model.data_preprocessor,
                                      self._get_drawer(runner), self.num_images,
                                      self._student_panel(model), self.gap, self.title_size,
                                      titles=dict(student=student_title(model)))
        # runner.iter + 1: the step the LoggerHook logs this iteration's scalars at.
        runner.visualizer.add_image(self.name, grid, step=runner.iter + 1)

    def _fixed_capture(self, runner, model) -> Dict[str, Any]:
        if self._dataset is None:
            self._dataset = DATASETS.build(self._dataset_cfg)
        count = min(self.num_images, len(self._dataset))
        was_training = model.training
        with preserved_rng():
            data = unlabelled_batch(model, self._dataset, range(count))
            capture = capture_pseudo_labels(model, data['inputs'], data['data_samples'],
                                            copy_mixer=True)
        model.train(was_training)
        return capture

    def _warn_empty(self, runner) -> None:
        if self._warned:
            return
        self._warned = True
        print_log(f'{type(self).__name__}: the detector left `{CAPTURE_ATTR}` empty at '
                  f'iteration {runner.iter + 1}; nothing drawn. Batch mode needs a '
                  'SemiMaskDetector that fills the capture dict in loss() (or use '
                  '`dataset=` for fixed mode).', logger='current', level=30)
