"""Drawing pseudo-labels: teacher / SAM-refined / student (ARP-mixed) panels of a
``PseudoLabelRecord``, tiled into one image (used by ``PseudoLabelVisHook`` and
``tools/analysis_tools/browse_pseudo_labels.py``)."""
from __future__ import annotations

import contextlib
import random
import warnings
from typing import Any, Dict, Iterator, List, Optional, Sequence

import mmcv
import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import BaseBoxes
from mmdet.visualization import DetLocalVisualizer
from mmengine.structures import InstanceData

from mmssis.structures import as_bool_masks, denormalize_views, masks_to_boxes

PANEL_TITLES = dict(teacher='teacher', sam='SAM-refined', student='student')


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


def _masks_array(masks, shape: Sequence[int]) -> np.ndarray:
    """``(N, h, w)`` bool array of any mask container, cropped to ``shape`` (h, w)."""
    h, w = shape[:2]
    # Mask2Former students keep masks padded to batch_input_shape: cut the padding.
    return as_bool_masks(masks, 'cpu')[:, :h, :w].numpy()


def drawable_instances(inst: InstanceData, img_shape: Sequence[int]) -> InstanceData:
    """The fields mmdet's visualizer draws, on CPU, masks cropped to ``img_shape``."""
    out = InstanceData()
    if 'bboxes' in inst:
        boxes = inst.bboxes.tensor if isinstance(inst.bboxes, BaseBoxes) else inst.bboxes
    else:  # teacher-view pseudo-labels carry masks only
        boxes = masks_to_boxes(as_bool_masks(inst.masks))
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


def panel_kinds(record, show_student: bool) -> List[str]:
    """Which panels a record yields: ``teacher`` [, ``sam``] [, ``student``]."""
    kinds = ['teacher']
    if record.refined is not None:
        kinds.append('sam')
    if show_student and record.student_inputs is not None:
        kinds.append('student')
    return kinds


def draw_pseudo_label_rows(record, normalization: Dict[str, Any],
                           drawer: DetLocalVisualizer, num_images: Optional[int] = None,
                           show_student: bool = True, title_size: int = 10,
                           titles: Optional[Dict[str, str]] = None
                           ) -> List[List[np.ndarray]]:
    """Draw the panels of each captured unlabelled image.

    Args:
        record: A ``PseudoLabelRecord`` (:meth:`SemiMaskDetector.pseudo_label`).
        normalization: ``mean`` / ``std`` / ``channels`` of the record's inputs
            (``mmssis.models.utils.view_normalization`` of the detector's preprocessor).
        drawer: The visualizer used for drawing.
        num_images: Draw the first this many images (None: all).
        show_student: Add the student panel.
        title_size: Font size of panel titles.
        titles: Panel titles overriding :data:`PANEL_TITLES` (keys ``teacher``, ``sam``,
            ``student``).

    Returns:
        Per image, the list of (h, w, 3) uint8 RGB panels in :func:`panel_kinds` order.
    """
    kinds = panel_kinds(record, show_student)
    titles = {**PANEL_TITLES, **(titles or {})}
    t_samples = record.teacher_samples
    count = len(t_samples) if num_images is None else min(num_images, len(t_samples))
    t_samples = t_samples[:count]
    t_images = denormalize_views(record.teacher_inputs[:count],
                                 [s.metainfo['img_shape'] for s in t_samples], **normalization)
    if 'student' in kinds:
        s_samples = record.student_samples[:count]
        s_images = denormalize_views(record.student_inputs[:count],
                                     [s.metainfo['img_shape'] for s in s_samples],
                                     **normalization)
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
                inst = (record.kept if kind == 'teacher' else record.refined)[i]
            row.append(draw_panel(drawer, image, drawable_instances(inst, shape),
                                  titles[kind], title_size))
        rows.append(row)
    return rows


def tile_rows(rows: List[List[np.ndarray]], gap: int = 4, pad_val: int = 255) -> np.ndarray:
    """Tile panels into one image: a row per image, panels left to right.

    Every cell has the largest panel's size; a smaller panel (the views of an image are
    resized at random) is scaled up to fit it, keeping its aspect ratio, and centred, so
    rows and columns line up. Cells are separated by ``gap`` pixels of ``pad_val``.

    Returns:
        (rows * (H + gap) - gap, cols * (W + gap) - gap, 3) uint8 RGB.
    """
    cells = [p for row in rows for p in row]
    height = max(p.shape[0] for p in cells)
    width = max(p.shape[1] for p in cells)
    cols = max(len(row) for row in rows)
    blank = np.full((height + gap, width + gap, 3), pad_val, np.uint8)
    out_rows = []
    for row in rows:
        padded = []
        for p in row:
            if p.shape[:2] != (height, width):
                f = min(width / p.shape[1], height / p.shape[0])
                size = (min(width, round(p.shape[1] * f)), min(height, round(p.shape[0] * f)))
                p = mmcv.imresize(p, size, interpolation='bilinear')
            cell = blank.copy()
            top, left = (height - p.shape[0]) // 2, (width - p.shape[1]) // 2
            cell[top:top + p.shape[0], left:left + p.shape[1]] = p
            padded.append(cell)
        padded += [blank] * (cols - len(row))
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


def draw_pseudo_label_grid(record, normalization: Dict[str, Any],
                           drawer: DetLocalVisualizer, num_images: Optional[int] = None,
                           show_student: bool = True, gap: int = 4,
                           title_size: int = 10,
                           titles: Optional[Dict[str, str]] = None) -> np.ndarray:
    """:func:`draw_pseudo_label_rows` tiled by :func:`tile_rows`.

    Returns:
        One (H, W, 3) uint8 RGB image: a row per image, a column per panel.
    """
    rows = draw_rows_quietly(record, normalization, drawer, num_images, show_student,
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


