"""SamRefineInstances: masks/boxes updated consistently, lazy per-process SAM, empty images."""
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmengine.registry import DefaultScope

from mmssis.datasets.transforms import SamRefineInstances
from mmssis.registry import MODELS, TRANSFORMS
from mmssis.sam import SamMaskRefiner, SamModelBackend
from mmssis.testing import build_tiny_sam, echo_box_refiner


@MODELS.register_module(name='_CountingTinySamBackend', force=True)
class _CountingTinySamBackend(SamModelBackend):
    """Tiny random SAM that counts how often it is built (to check lazy building)."""

    builds = 0

    def __init__(self) -> None:
        type(self).builds += 1
        super().__init__(build_tiny_sam(seed=0, img_size=64))


def _disc(h, w, cx, cy, r):
    yy, xx = np.mgrid[:h, :w]
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.uint8)


def _results(h=64, w=80, n=2):
    rng = np.random.default_rng(0)
    masks = np.stack([_disc(h, w, 20, 20, 8), _disc(h, w, 55, 40, 12)])[:n]
    boxes = np.array([[10, 9, 31, 32], [40, 25, 70, 55]], dtype=np.float32)[:n]
    return dict(img=rng.integers(0, 256, (h, w, 3), dtype=np.uint8), img_path='x.png',
                gt_masks=BitmapMasks(masks, h, w), gt_bboxes=HorizontalBoxes(boxes),
                gt_bboxes_labels=np.arange(n), gt_ignore_flags=np.zeros(n, dtype=bool))


def test_echo_sam_masks_become_prompt_boxes():
    res = SamRefineInstances(refiner=echo_box_refiner())(_results())
    masks, boxes = res['gt_masks'], res['gt_bboxes']
    assert isinstance(masks, BitmapMasks) and masks.masks.dtype == np.uint8
    assert isinstance(boxes, HorizontalBoxes) and boxes.tensor.dtype == torch.float32
    # The echo SAM draws the box prompt: every refined mask is its filled input box ...
    for mask, (x1, y1, x2, y2) in zip(masks.masks, [[10, 9, 31, 32], [40, 25, 70, 55]]):
        expected = np.zeros_like(mask)
        expected[y1:y2, x1:x2] = 1
        np.testing.assert_array_equal(mask, expected)
    # ... and the boxes are recomputed from the refined masks (mmdet's convention).
    np.testing.assert_allclose(boxes.numpy(), masks.get_bboxes('hbox').numpy())
    assert len(res['gt_bboxes_labels']) == 2 and len(res['gt_ignore_flags']) == 2


def test_random_sam_keeps_masks_and_boxes_consistent():
    refiner = SamMaskRefiner(SamModelBackend(build_tiny_sam(seed=1, img_size=64)),
                             num_points=2, use_box=True, seed=0)
    inp = _results()
    old = inp['gt_masks'].masks.copy()
    res = SamRefineInstances(refiner=refiner)(inp)
    masks = res['gt_masks'].masks
    assert masks.shape == old.shape
    nonempty = masks.reshape(len(masks), -1).any(1)
    assert nonempty.all()  # empty SAM outputs fall back to the input mask
    np.testing.assert_allclose(res['gt_bboxes'].numpy(),
                               res['gt_masks'].get_bboxes('hbox').numpy())


def test_array_boxes_stay_arrays():
    inp = _results()
    inp['gt_bboxes'] = inp['gt_bboxes'].numpy()
    res = SamRefineInstances(refiner=echo_box_refiner())(inp)
    assert isinstance(res['gt_bboxes'], np.ndarray) and res['gt_bboxes'].shape == (2, 4)


def test_zero_instances_do_not_build_sam():
    _CountingTinySamBackend.builds = 0
    t = SamRefineInstances(refiner=dict(type='SamMaskRefiner',
                                        backend=dict(type='_CountingTinySamBackend'),
                                        num_points=0, use_box=True, multimask=False))
    inp = _results(n=0)
    inp['gt_masks'] = BitmapMasks(np.zeros((0, 64, 80), np.uint8), 64, 80)
    inp['gt_bboxes'] = HorizontalBoxes(torch.zeros((0, 4)))
    res = t(inp)
    assert len(res['gt_masks']) == 0 and res['gt_bboxes'].tensor.shape == (0, 4)
    assert _CountingTinySamBackend.builds == 0


def test_refiner_built_lazily_once_and_not_pickled():
    _CountingTinySamBackend.builds = 0
    cfg = dict(type='SamRefineInstances',
               refiner=dict(type='SamMaskRefiner', backend=dict(type='_CountingTinySamBackend'),
                            num_points=0, use_box=True, multimask=False))
    with DefaultScope.overwrite_default_scope('mmssis'):
        t = TRANSFORMS.build(cfg)
    assert _CountingTinySamBackend.builds == 0  # nothing built at construction
    t(_results())
    t(_results())
    assert _CountingTinySamBackend.builds == 1  # once per process
    # A data-loader worker gets a pickled copy without SAM and builds its own.
    clone = pickle.loads(pickle.dumps(t))
    assert clone._refiner is None
    clone(_results())
    assert _CountingTinySamBackend.builds == 2


def test_frame_mismatch_is_an_error():
    inp = _results()
    inp['img'] = inp['img'][:32]
    with pytest.raises(ValueError, match='share'):
        SamRefineInstances(refiner=echo_box_refiner())(inp)


def test_in_pipeline_after_load_annotations(tiny_demo):
    from mmcv.transforms import Compose
    with DefaultScope.overwrite_default_scope('mmssis'):
        pipeline = Compose([
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='SamRefineInstances', refiner=echo_box_refiner()),
            dict(type='PackDetInputs'),
        ])
        from mmssis.datasets import CheckedCocoDataset
        from mmssis.demo import demo_metainfo
        ds = CheckedCocoDataset(ann_file=tiny_demo.val_ann, metainfo=demo_metainfo(),
                                data_prefix=dict(img=osp.join(tiny_demo.root, 'images/')),
                                pipeline=[], test_mode=True)
    info = ds[0]
    out = pipeline(info)
    gt = out['data_samples'].gt_instances
    assert len(gt) == len(info['instances']) > 0
    # Echo SAM + box prompt: each refined mask is the GT box (the input box prompt).
    mask_boxes = gt.masks.get_bboxes('hbox').numpy()
    np.testing.assert_allclose(gt.bboxes.numpy(), mask_boxes)
    gt_boxes = np.array([i['bbox'] for i in info['instances']], dtype=np.float32)
    assert np.abs(mask_boxes - gt_boxes).max() <= 1.0
