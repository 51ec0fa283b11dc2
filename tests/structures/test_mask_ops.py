"""mmssis.structures: mask projection between augmented views (mmdet homography
convention), masks <-> boxes, mask IoU, greedy matching, the ground-truth frame."""
from typing import List, Optional, Tuple

import numpy as np
import pytest
import torch
from mmdet.datasets.transforms import Pad, RandomCrop, RandomFlip, Resize
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes, bbox_project
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

import torch.nn.functional as F

from mmssis.structures import (align_to_gt_frame, as_bool_masks, denormalize_views, mask_iou,
                               masks_to_boxes, match_instances, project_instance_masks,
                               project_masks, relative_homography)

# Objects of 80-140 px: mmdet resizes BitmapMasks with cv2 INTER_NEAREST, which is not
# half-pixel aligned and moves borders by up to a pixel; IoU >= 0.98 needs objects this big.
ORI_H, ORI_W = 240, 320


def _ellipse_masks(h: int = ORI_H, w: int = ORI_W) -> np.ndarray:
    """Four ellipses (uint8 (4, h, w)) placed to survive the crops used below."""
    yy, xx = np.mgrid[0:h, 0:w]
    specs = [(80, 100, 55, 50), (150, 210, 55, 70), (120, 150, 70, 40), (170, 250, 40, 50)]
    return np.stack([(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1)
                     for cy, cx, ry, rx in specs]).astype(np.uint8)


def _results(masks: np.ndarray) -> dict:
    bitmap = BitmapMasks(masks, *masks.shape[1:])
    return dict(
        img=np.zeros((*masks.shape[1:], 3), np.uint8),
        img_shape=masks.shape[1:],
        ori_shape=masks.shape[1:],
        gt_masks=bitmap,
        gt_bboxes=HorizontalBoxes(bitmap.get_bboxes(dst_type='hbox').tensor),
        gt_bboxes_labels=np.zeros(len(masks), np.int64),
        gt_ignore_flags=np.zeros(len(masks), bool))


def _fixed_crop(crop_hw: Tuple[int, int], offset_yx: Tuple[int, int]) -> RandomCrop:
    crop = RandomCrop(crop_size=(crop_hw[1], crop_hw[0]), allow_negative_crop=True)
    crop._rand_offset = lambda margin: offset_yx  # deterministic, still mmdet's code path
    return crop


def _run(masks: np.ndarray, transforms: List) -> dict:
    results = _results(masks)
    for t in transforms:
        results = t(results)
    assert len(results['gt_masks']) == len(masks), 'an instance was dropped'
    return results


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(bool), b.astype(bool)
    inter = (a & b).reshape(len(a), -1).sum(1)
    union = (a | b).reshape(len(a), -1).sum(1)
    return inter / np.maximum(union, 1)


def _sample(results: dict, batch_input_shape: Optional[Tuple[int, int]] = None):
    meta = dict(img_shape=results['img_shape'], ori_shape=results['ori_shape'],
                homography_matrix=results['homography_matrix'])
    if batch_input_shape is not None:
        meta['batch_input_shape'] = batch_input_shape
    return DetDataSample(metainfo=meta)


# --------------------------------------------------------------------------- project_masks
@pytest.mark.parametrize('mode', ['nearest', 'bilinear'])
@pytest.mark.parametrize('dtype', [torch.bool, torch.uint8, torch.float32])
def test_identity_returns_same_mask(mode, dtype):
    masks = torch.from_numpy(_ellipse_masks()).to(dtype)
    out = project_masks(masks, torch.eye(3), (ORI_H, ORI_W), mode=mode)
    assert out.dtype == dtype and out.shape == masks.shape
    # Binary masks come back bit-exact; soft ones up to float32 rounding of the grid.
    torch.testing.assert_close(out, masks, rtol=0, atol=1e-4 if dtype.is_floating_point else 0)


def test_float_masks_stay_soft_and_shift_exactly():
    soft = torch.rand(2, 30, 40)
    shift = np.array([[1, 0, 3], [0, 1, -2], [0, 0, 1]], np.float32)  # x+3, y-2
    out = project_masks(soft, shift, (30, 40), mode='bilinear')
    expected = torch.zeros_like(soft)
    expected[:, :28, 3:] = soft[:, 2:, :37]
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('mode', ['nearest', 'bilinear'])
@pytest.mark.parametrize('direction', ['horizontal', 'vertical', 'diagonal'])
def test_flip_matches_mmdet_exactly(mode, direction):
    masks = _ellipse_masks()
    res = _run(masks, [RandomFlip(prob=1.0, direction=direction)])
    out = project_masks(torch.from_numpy(masks).bool(), res['homography_matrix'],
                        res['img_shape'], mode=mode)
    np.testing.assert_array_equal(out.numpy(), res['gt_masks'].masks.astype(bool))


@pytest.mark.parametrize('mode', ['nearest', 'bilinear'])
def test_flip_then_integer_crop_matches_mmdet_exactly(mode):
    masks = _ellipse_masks()
    res = _run(masks, [RandomFlip(prob=1.0), _fixed_crop((180, 220), (17, 29))])
    assert tuple(res['img_shape']) == (180, 220)
    out = project_masks(torch.from_numpy(masks), res['homography_matrix'], res['img_shape'],
                        mode=mode)
    np.testing.assert_array_equal(out.numpy(), res['gt_masks'].masks)


@pytest.mark.parametrize('mode', ['nearest', 'bilinear'])
def test_flip_resize_crop_pad_matches_mmdet(mode):
    masks = _ellipse_masks()
    res = _run(masks, [
        RandomFlip(prob=1.0),
        Resize(scale=(466, 342), keep_ratio=False),  # non-integer factors 1.456 x 1.425
        _fixed_crop((300, 400), (11, 23)),
        Pad(size_divisor=32),
    ])
    img_h, img_w = res['img_shape']
    pad_h, pad_w = res['pad_shape'][:2]
    assert (pad_h, pad_w) == (320, 416)
    expected = res['gt_masks'].masks
    assert expected.shape == (4, pad_h, pad_w)
    out = project_masks(torch.from_numpy(masks).bool(), res['homography_matrix'],
                        (img_h, img_w), mode=mode).numpy()
    assert not expected[:, img_h:].any() and not expected[:, :, img_w:].any()
    ious = _iou(out, expected[:, :img_h, :img_w])
    # mmdet resizes BitmapMasks with cv2 INTER_NEAREST (not half-pixel aligned).
    assert ious.min() >= 0.98, ious


def test_bilinear_resize_matches_cv2_half_pixel_linear():
    """Half-pixel convention: a bilinear warp equals cv2 INTER_LINEAR + 0.5 threshold."""
    import mmcv
    masks = _ellipse_masks()
    res = _run(masks, [Resize(scale=(466, 342), keep_ratio=False)])
    out = project_masks(torch.from_numpy(masks).bool(), res['homography_matrix'],
                        res['img_shape'], mode='bilinear').numpy()
    cv2_linear = np.stack([
        mmcv.imresize(m.astype(np.float32), (466, 342), interpolation='bilinear') >= 0.5
        for m in masks
    ])
    # Only pixels whose interpolated value is within float rounding of 0.5 may differ.
    assert (out != cv2_linear).mean() < 1e-4


def test_matches_bbox_project_half_pixel_convention():
    """A box mask warped like its box: same edges as mmdet's bbox_project, exactly."""
    mask = torch.zeros(1, 20, 30, dtype=torch.bool)
    mask[0, 3:8, 2:6] = True  # pixels rows 3..7, cols 2..5 -> box [2, 3, 6, 8]
    box = torch.tensor([[2., 3., 6., 8.]])
    torch.testing.assert_close(masks_to_boxes(mask), box)
    flip = torch.tensor([[-1., 0., 30.], [0., 1., 0.], [0., 0., 1.]])
    scale = torch.diag(torch.tensor([2., 3., 1.]))
    shift = torch.tensor([[1., 0., -1.], [0., 1., -4.], [0., 0., 1.]])
    homography = shift @ scale @ flip
    for mode in ('nearest', 'bilinear'):
        out = project_masks(mask, homography, (60, 60), mode=mode)
        torch.testing.assert_close(masks_to_boxes(out), bbox_project(box, homography))


def test_outside_is_zero_and_empty_inputs():
    masks = torch.ones(2, 10, 10, dtype=torch.bool)
    shift = torch.tensor([[1., 0., 5.], [0., 1., 0.], [0., 0., 1.]])
    out = project_masks(masks, shift, (10, 20))
    assert out[:, :, 5:15].all() and not out[:, :, :5].any() and not out[:, :, 15:].any()
    empty = project_masks(torch.zeros(0, 10, 10), shift, (7, 9))
    assert empty.shape == (0, 7, 9) and empty.dtype == torch.float32


def test_chunking_does_not_change_result():
    masks = torch.from_numpy(np.concatenate([_ellipse_masks()] * 3)).bool()
    homography = torch.tensor([[1.3, 0., -4.], [0., 0.8, 3.], [0., 0., 1.]])
    full = project_masks(masks, homography, (100, 150), chunk_size=64)
    chunked = project_masks(masks, homography, (100, 150), chunk_size=5)
    assert torch.equal(full, chunked)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        project_masks(torch.zeros(10, 10), torch.eye(3), (5, 5))
    with pytest.raises(ValueError):
        project_masks(torch.zeros(1, 10, 10), torch.eye(3), (5, 5), mode='bicubic')
    with pytest.raises(ValueError):
        project_masks(torch.zeros(1, 10, 10), torch.eye(2), (5, 5))


# ----------------------------------------------------------------------- masks_to_boxes
def test_masks_to_boxes_empty_and_single_pixel():
    masks = torch.zeros(3, 8, 9, dtype=torch.bool)
    masks[1, 4, 7] = True
    masks[2, 0:8, 0:9] = True
    boxes = masks_to_boxes(masks)
    assert boxes.dtype == torch.float32
    torch.testing.assert_close(boxes, torch.tensor([[0., 0., 0., 0.], [7., 4., 8., 5.],
                                                    [0., 0., 9., 8.]]))
    assert masks_to_boxes(torch.zeros(0, 8, 9)).shape == (0, 4)
    assert masks_to_boxes(torch.zeros(2, 8, 9, dtype=torch.uint8)).abs().sum() == 0


def test_masks_to_boxes_agrees_with_bitmapmasks():
    rng = np.random.default_rng(0)
    masks = (rng.random((6, 15, 17)) > 0.97).astype(np.uint8)
    masks[0] = 0
    expected = BitmapMasks(masks, 15, 17).get_bboxes(dst_type='hbox').tensor
    torch.testing.assert_close(masks_to_boxes(torch.from_numpy(masks)), expected)


# --------------------------------------------------------------- project_instance_masks
def _teacher_student_views():
    masks = _ellipse_masks()
    teacher = _run(masks, [RandomFlip(prob=1.0), Resize(scale=(400, 300), keep_ratio=False)])
    student = _run(masks, [
        Resize(scale=(480, 360), keep_ratio=False),
        _fixed_crop((320, 400), (9, 21)),
    ])
    return teacher, student


@pytest.mark.parametrize('as_bitmap', [True, False])
def test_project_instance_masks_teacher_to_student(as_bitmap):
    teacher, student = _teacher_student_views()
    t_masks = teacher['gt_masks']
    masks = t_masks if as_bitmap else torch.from_numpy(t_masks.masks).bool()
    bboxes = t_masks.get_bboxes(dst_type='hbox').tensor
    inst = InstanceData(masks=masks, bboxes=bboxes, labels=torch.arange(4),
                        scores=torch.rand(4))
    out = project_instance_masks(inst, _sample(teacher), _sample(student))

    img_h, img_w = student['img_shape']
    if as_bitmap:
        assert isinstance(out.masks, BitmapMasks) and (out.masks.height, out.masks.width) == (
            img_h, img_w)
        got = out.masks.masks
    else:
        assert out.masks.dtype == torch.bool and out.masks.shape == (4, img_h, img_w)
        got = out.masks.numpy()
    ious = _iou(got, student['gt_masks'].masks)
    assert ious.min() >= 0.98, ious  # two cv2-nearest resizes in mmdet vs one warp here
    assert torch.equal(out.labels, inst.labels) and torch.equal(out.scores, inst.scores)
    # Boxes are in the student frame too (same as SemiBaseDetector's bbox_project path).
    expected_boxes = student['gt_masks'].get_bboxes(dst_type='hbox').tensor
    assert (out.bboxes - expected_boxes).abs().max() <= 2.0
    assert inst.masks is masks  # input untouched


def test_project_instance_masks_pads_to_batch_input():
    teacher, student = _teacher_student_views()
    img_h, img_w = student['img_shape']
    inst = InstanceData(masks=torch.from_numpy(teacher['gt_masks'].masks).float())
    out = project_instance_masks(inst, _sample(teacher), _sample(student, (352, 416)),
                                 pad_to_batch_input=True)
    assert out.masks.shape == (4, 352, 416) and out.masks.dtype == torch.float32
    assert out.masks[:, img_h:].abs().sum() == 0 and out.masks[:, :, img_w:].abs().sum() == 0
    direct = project_instance_masks(inst, _sample(teacher), _sample(student))
    torch.testing.assert_close(out.masks[:, :img_h, :img_w], direct.masks)


def test_project_instance_masks_identity_and_empty():
    masks = _ellipse_masks()
    # Untransformed view without a homography: the identity is exact (ori_shape == img_shape).
    sample = DetDataSample(metainfo=dict(img_shape=(ORI_H, ORI_W), ori_shape=(ORI_H, ORI_W)))
    inst = InstanceData(masks=BitmapMasks(masks, ORI_H, ORI_W))
    out = project_instance_masks(inst, sample, sample)
    np.testing.assert_array_equal(out.masks.masks, masks)
    empty = InstanceData(masks=BitmapMasks(np.zeros((0, 10, 12), np.uint8), 10, 12),
                         bboxes=torch.zeros(0, 4))
    out = project_instance_masks(empty, sample, sample)
    assert len(out.masks) == 0 and (out.masks.height, out.masks.width) == (ORI_H, ORI_W)
    assert out.bboxes.shape == (0, 4)


def test_relative_homography_composes_views():
    teacher, student = _teacher_student_views()
    h = relative_homography(_sample(teacher), _sample(student))
    expected = np.linalg.inv(teacher['homography_matrix'].astype(np.float64))
    expected = student['homography_matrix'].astype(np.float64) @ expected
    np.testing.assert_allclose(h.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert h.dtype == torch.float64


# ------------------------------------------------------------------- IoU and matching
def _box(x1, y1, x2, y2, size=(20, 20)):
    m = torch.zeros(size, dtype=torch.bool)
    m[y1:y2, x1:x2] = True
    return m


def test_mask_iou_values_and_frame_check():
    iou = mask_iou(torch.stack([_box(0, 0, 10, 10), _box(0, 0, 10, 5)]),
                   torch.stack([_box(0, 0, 10, 10), _box(5, 0, 15, 10)]))
    np.testing.assert_allclose(iou.numpy(), [[1.0, 50 / 150], [0.5, 25 / 125]], rtol=1e-6)
    with pytest.raises(ValueError, match='different frames'):
        mask_iou(torch.zeros(1, 4, 4, dtype=torch.bool), torch.zeros(1, 4, 5, dtype=torch.bool))


def test_greedy_matching_prefers_higher_score():
    gt = torch.stack([_box(0, 0, 10, 10)])
    pred = torch.stack([_box(0, 0, 10, 6), _box(0, 0, 10, 9)])
    match = match_instances(pred, gt, torch.tensor([0, 0]), torch.tensor([0]),
                            torch.tensor([0.9, 0.5]))
    assert match.pred_to_gt.tolist() == [0, -1]  # the confident (worse) mask wins
    assert match.matched_ious.tolist() == pytest.approx([0.6])
    other_class = match_instances(pred, gt, torch.tensor([1, 1]), torch.tensor([0]),
                                  torch.tensor([0.9, 0.5]))
    assert other_class.num_tp == 0


def test_as_bool_masks_of_every_container():
    arr = np.zeros((2, 3, 4), np.uint8)
    arr[1, 1, 2] = 1
    for masks in (BitmapMasks(arr, 3, 4), torch.from_numpy(arr), arr):
        out = as_bool_masks(masks)
        assert out.dtype == torch.bool and out.shape == (2, 3, 4)
        assert out.nonzero().tolist() == [[1, 1, 2]]


def test_align_to_gt_frame_original_view_and_padded():
    gt = _box(2, 4, 12, 16)  # original frame 20x20
    view = F.interpolate(gt[None, None].float(), scale_factor=2.0, mode='nearest')[0] > 0
    sample = DetDataSample(metainfo=dict(img_shape=(40, 40), ori_shape=(20, 20),
                                         scale_factor=(2.0, 2.0)))
    out, crop = align_to_gt_frame(view, sample, (20, 20))
    assert torch.equal(out[0], gt) and crop == (20, 20)
    same, crop = align_to_gt_frame(view, sample, (40, 40))
    assert same.shape == (1, 40, 40) and crop == (40, 40)
    padded, crop = align_to_gt_frame(view, sample, (64, 64))  # GT padded bottom/right
    assert padded.shape == (1, 40, 40) and crop == (40, 40)
    with pytest.raises(ValueError, match='neither'):
        align_to_gt_frame(view, sample, (30, 30))


def test_denormalize_views_inverts_the_normalisation():
    rgb = torch.randint(0, 256, (2, 3, 5, 6), dtype=torch.uint8)
    mean, std = [10.0, 20.0, 30.0], [2.0, 3.0, 4.0]
    x = (rgb.float() - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    out = denormalize_views(x, [(5, 6), (4, 3)], mean, std, channels='rgb')
    assert np.array_equal(out[0], rgb[0].permute(1, 2, 0).numpy())
    assert out[1].shape == (4, 3, 3)
    bgr = denormalize_views(x.flip(1), [(5, 6)], mean[::-1], std[::-1], channels='bgr')
    assert np.array_equal(bgr[0], out[0])


def test_loosen_boxes_grows_and_clamps():
    from mmssis.structures import loosen_boxes
    boxes = torch.tensor([[10., 20., 30., 40.], [1., 2., 99., 49.]])
    out = loosen_boxes(boxes, 5, (50, 100))
    assert torch.equal(out, torch.tensor([[5., 15., 35., 45.], [0., 0., 100., 50.]]))
    assert torch.equal(boxes[0], torch.tensor([10., 20., 30., 40.]))  # input untouched
