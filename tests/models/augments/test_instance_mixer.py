"""ARPInstanceMixer / paste_instances: S4M's batch-level instance mixing (ARP)."""
import warnings

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from mmssis.models.augments import ARPInstanceMixer, ARPLayoutError, paste_instances
from mmssis.structures import masks_to_boxes
from mmssis.registry import MODELS
from mmssis.testing import make_semi_batch, set_train_step, tiny_mask_rcnn_cfg


def box_mask(shape, box):
    """(H, W) bool mask of the xyxy pixel-edge box."""
    m = torch.zeros(shape, dtype=torch.bool)
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = True
    return m


def sample_with(boxes, img_shape=(64, 64), mask_shape=None, labels=None, scores=True):
    """A student sample whose pseudo-instances are the given boxes (BitmapMasks)."""
    h, w = img_shape
    mh, mw = mask_shape or img_shape
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), batch_input_shape=(mh, mw)))
    n = len(boxes)
    masks = np.stack([box_mask((mh, mw), b).numpy() for b in boxes]).astype(np.uint8) \
        if n else np.zeros((0, mh, mw), np.uint8)
    inst = InstanceData(
        masks=BitmapMasks(masks, mh, mw),
        bboxes=masks_to_boxes(torch.from_numpy(masks)),
        labels=torch.tensor(labels if labels is not None else list(range(n)), dtype=torch.long))
    if scores:
        inst.scores = torch.linspace(0.9, 0.5, n) if n else torch.zeros(0)
    sample.gt_instances = inst
    return sample


def masks_of(sample):
    return torch.from_numpy(sample.gt_instances.masks.masks.astype(bool))


# ------------------------------------------------------------------------------------
# paste_instances
def test_paste_copies_source_pixels_and_occludes():
    dst_img, src_img = torch.zeros(3, 32, 32), torch.randn(3, 32, 32)
    dst_masks = torch.stack([box_mask((32, 32), (0, 0, 10, 10)),  # partly covered
                             box_mask((32, 32), (11, 11, 14, 14)),  # fully covered
                             box_mask((32, 32), (25, 25, 30, 30))])  # untouched
    src_mask = box_mask((32, 32), (2, 3, 10, 11))  # 8 x 8 at x=2, y=3
    res = paste_instances(dst_img, dst_masks, src_img, src_mask[None], scales=[1.0],
                          offsets=[(6, 6)])
    # Pasted pixels are exactly the source pixels, shifted by (4, 3).
    assert torch.equal(res.img[:, 6:14, 6:14], src_img[:, 3:11, 2:10])
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[6:14, 6:14] = False
    assert torch.all(res.img[:, outside] == 0)
    assert torch.equal(res.pasted_masks[0], box_mask((32, 32), (6, 6, 14, 14)))
    # Occlusion: covered pixels leave the destination masks; the empty one is dropped.
    assert res.dst_keep.tolist() == [True, False, True]
    assert not (res.dst_masks & res.pasted_masks[0]).any()
    assert res.dst_masks[0].sum() == 100 - 16
    assert torch.equal(res.dst_masks[1], dst_masks[2])
    assert dst_img.abs().sum() == 0, 'input image must not be modified'


def test_paste_rescales_with_nearest_source_pixels():
    src_img = torch.arange(3 * 16 * 16, dtype=torch.float32).reshape(3, 16, 16)
    src_mask = box_mask((16, 16), (4, 4, 8, 8))
    res = paste_instances(torch.zeros(3, 32, 32), torch.zeros(0, 32, 32, dtype=torch.bool),
                          src_img, src_mask[None], scales=[2.0], offsets=[(10, 12)])
    assert torch.equal(res.pasted_masks[0], box_mask((32, 32), (10, 12, 18, 20)))
    # Every output pixel is the source pixel under it at half the resolution.
    expected = src_img[:, 4:8, 4:8].repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert torch.equal(res.img[:, 12:20, 10:18], expected)


def test_paste_clips_to_valid_region_and_skips_invisible():
    src_img = torch.ones(3, 32, 32)
    masks = torch.stack([box_mask((32, 32), (0, 0, 8, 8)), box_mask((32, 32), (0, 0, 8, 8))])
    res = paste_instances(torch.zeros(3, 32, 32), torch.zeros(0, 32, 32), src_img, masks,
                          offsets=[(20, 20), (30, 0)], valid_shape=(24, 24), min_kept_area=4)
    # First: clipped to the 24 x 24 img_shape (4 x 4 visible); second: nothing visible.
    assert res.pasted_keep.tolist() == [True, False]
    assert res.pasted_masks[0].sum() == 16 and res.pasted_masks[0][20:24, 20:24].all()
    assert res.img[:, 24:].abs().sum() == 0 and res.img[:, :, 24:].abs().sum() == 0


# ------------------------------------------------------------------------------------
# ARPInstanceMixer
def two_image_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(2, 3, 64, 64, generator=g)
    samples = [sample_with([(4, 4, 30, 30), (50, 54, 54, 58)], labels=[0, 1]),
               sample_with([(20, 10, 60, 50)], labels=[2])]
    return inputs, samples


def check_boxes_match_masks(samples):
    for s in samples:
        inst = s.gt_instances
        assert len(inst.masks) == len(inst.bboxes) == len(inst.labels)
        assert torch.equal(inst.bboxes, masks_to_boxes(masks_of(s)))
        np.testing.assert_array_equal(inst.bboxes.numpy(), inst.masks.get_bboxes('hbox').numpy())
        assert (masks_of(s).flatten(1).sum(1) > 0).all()


def test_mixer_swaps_large_instances_both_ways_from_original_images():
    inputs, samples = two_image_batch()
    before = inputs.clone()
    mixer = ARPInstanceMixer(min_area=100, scale_range=(1.0, 1.0), max_translate=0.0, seed=3)
    out, new, stats = mixer(inputs, samples)
    assert torch.equal(inputs, before) and out is not inputs
    assert len(samples[0].gt_instances) == 2 and len(samples[1].gt_instances) == 1
    # The 4 x 4 instance (area 16 < 100) is not pasted; each big one is pasted once.
    assert new[0].gt_instances.labels.tolist() == [0, 1, 2]
    assert new[1].gt_instances.labels.tolist() == [2, 0]
    assert stats == dict(arp_pairs=1, arp_pasted=2, arp_dropped=0)
    check_boxes_match_masks(new)
    # No scale/translation and same-size images: instances land where they were, with
    # the ORIGINAL partner pixels (directions do not compound).
    m_into_0 = masks_of(new[0])[2]
    assert torch.equal(m_into_0, box_mask((64, 64), (20, 10, 60, 50)))
    assert torch.equal(out[0][:, m_into_0], before[1][:, m_into_0])
    m_into_1 = masks_of(new[1])[1]
    assert torch.equal(m_into_1, box_mask((64, 64), (4, 4, 30, 30)))
    assert torch.equal(out[1][:, m_into_1], before[0][:, m_into_1])
    # Occlusion: each destination instance lost its 10 x 20 overlap with the pasted one.
    expected_0 = box_mask((64, 64), (4, 4, 30, 30)) & ~m_into_0
    assert torch.equal(masks_of(new[0])[0], expected_0) and expected_0.sum() == 676 - 200
    expected_1 = box_mask((64, 64), (20, 10, 60, 50)) & ~m_into_1
    assert torch.equal(masks_of(new[1])[0], expected_1) and expected_1.sum() == 1600 - 200
    # Boxes follow the masks (this L-shape still spans the whole original box).
    assert new[1].gt_instances.bboxes[0].tolist() == [20.0, 10.0, 60.0, 50.0]
    # Scores travel with the instances.
    assert torch.allclose(new[1].gt_instances.scores, torch.tensor([0.9, 0.9]))


def test_mixer_occlusion_drops_emptied_masks():
    inputs = torch.randn(2, 3, 64, 64)
    samples = [sample_with([(0, 0, 64, 64)], labels=[0]),
               sample_with([(10, 10, 20, 20), (40, 40, 50, 50)], labels=[1, 2])]
    mixer = ARPInstanceMixer(min_area=1000, scale_range=(1.0, 1.0), max_translate=0.0, seed=0)
    out, new, stats = mixer(inputs, samples)
    # The full-image instance covers both small ones, which are dropped.
    assert new[1].gt_instances.labels.tolist() == [0]
    assert stats['arp_dropped'] == 2
    assert torch.equal(out[1], inputs[0])
    # The small ones are below min_area: image 0 receives nothing.
    assert new[0].gt_instances.labels.tolist() == [0]
    assert torch.equal(out[0], inputs[0])
    check_boxes_match_masks(new)


def test_mixer_random_scale_translation_stays_inside_and_copies_pixels():
    inputs, samples = two_image_batch()
    mixer = ARPInstanceMixer(min_area=100, scale_range=(0.7, 1.3), max_translate=0.5, seed=1)
    for step in range(5):
        set_train_step(step)  # each step draws its own scale / offsets
        out, new, _ = mixer(inputs, samples)
        check_boxes_match_masks(new)
        for dst in (0, 1):
            pasted = masks_of(new[dst])[len(samples[dst].gt_instances):]
            for m in pasted:
                # Inside img_shape, and every pasted pixel is some source pixel value.
                src_vals = inputs[1 - dst].permute(1, 2, 0).reshape(-1, 3)
                got = out[dst][:, m].T
                assert got.shape[0] > 0
                assert (got[:, None, :] == src_vals[None]).all(-1).any(1).all()


def test_same_seed_same_output_different_seed_differs():
    inputs, samples = two_image_batch()
    cfg = dict(min_area=100, scale_range=(0.5, 1.5), max_translate=0.3)
    runs = []
    for seed in (7, 7, 8):
        mixer = ARPInstanceMixer(seed=seed, **cfg)
        runs.append([])
        for step in range(2):
            set_train_step(step)
            runs[-1].append(mixer(inputs, samples)[:2])
    for (a_img, a_s), (b_img, b_s) in zip(runs[0], runs[1]):
        assert torch.equal(a_img, b_img)
        for x, y in zip(a_s, b_s):
            np.testing.assert_array_equal(x.gt_instances.masks.masks, y.gt_instances.masks.masks)
            assert torch.equal(x.gt_instances.bboxes, y.gt_instances.bboxes)
    assert any(not torch.equal(a[0], c[0]) for a, c in zip(runs[0], runs[2]))


def test_layout_without_unmixed_images_or_without_pairs_is_an_error():
    inputs, samples = two_image_batch()
    mixer = ARPInstanceMixer(min_area=1, seed=0)
    with pytest.raises(ARPLayoutError, match='cannot mix with 1 unlabelled'):
        mixer(inputs[:1], samples[:1])
    with pytest.raises(ARPLayoutError, match='3 \\+ 3 per GPU on COCO'):
        mixer.check_layout(1)
    with pytest.raises(ARPLayoutError, match='mix every unlabelled image with 2'):
        mixer.check_layout(2)
    # The official shares: COCO 3 per GPU -> 2 of 3, Cityscapes 4 -> 2 of 4, 8 -> 4 of 8.
    assert [mixer.check_layout(b) for b in (3, 4, 8)] == [2 / 3, 0.5, 0.5]
    # An explicit pair count mixes everything on purpose.
    assert ARPInstanceMixer(num_pairs=1).check_layout(2) == 1.0


def _official_receiving_masks(dst_masks, pasted_masks):
    """Reference from the official semantics: the receiving image's masks lose what the
    pasted ones cover, then all masks (own first, pasted after, each in instance order)
    become mutually exclusive with a later mask on top, and empty ones go."""
    union = torch.zeros_like(dst_masks[0]) if len(pasted_masks) else None
    for m in pasted_masks:
        union |= m
    own = [m & ~union for m in dst_masks] if union is not None else list(dst_masks)
    allm = own + list(pasted_masks)
    for j in range(len(allm) - 2, -1, -1):
        later = torch.zeros_like(allm[j])
        for m in allm[j + 1:]:
            later |= m
        allm[j] = allm[j] & ~later
    return [m for m in allm if m.any()]


def test_official_paste_order_and_exclusive_occlusion_match_reference():
    h = w = 40
    dst_masks = torch.zeros(3, h, w, dtype=torch.bool)
    dst_masks[0, 0:20, 0:20] = True
    dst_masks[1, 10:30, 10:30] = True      # overlaps instance 0: the later one wins
    dst_masks[2, 12:16, 12:16] = True      # inside instance 1, later: keeps its pixels
    src_masks = torch.zeros(3, h, w, dtype=torch.bool)
    src_masks[0, 5:25, 20:38] = True       # large, first in instance order
    src_masks[1, 8:14, 24:30] = True       # small, inside the first: on top of it
    src_masks[2, 30:40, 0:10] = True
    src_img = torch.arange(3 * h * w, dtype=torch.float32).reshape(3, h, w)
    res = paste_instances(torch.zeros(3, h, w), dst_masks, src_img, src_masks,
                          offsets=None, min_kept_area=1, exclusive_dst=True)
    got = list(res.dst_masks) + list(res.pasted_masks)
    ref = _official_receiving_masks(list(dst_masks), list(src_masks))
    assert len(got) == len(ref) == 6
    for g, r in zip(got, ref):
        assert torch.equal(g, r)
    total = torch.stack(got).sum(0)
    assert int(total.max()) == 1  # mutually exclusive
    # Pixels: every pasted mask shows its own source pixels (the later instance on top).
    for m in res.pasted_masks:
        assert torch.equal(res.img[:, m], src_img[:, m])
    # The mmssis default keeps the receiving image's own overlaps.
    res_default = paste_instances(torch.zeros(3, h, w), dst_masks, src_img, src_masks)
    assert bool((res_default.dst_masks[0] & res_default.dst_masks[1]).any())


def test_mixer_paste_order_instance_keeps_source_order():
    inputs = torch.randn(2, 3, 40, 40)
    # Instance order: a small instance first, a big one containing it after.
    samples = [sample_with([(10, 10, 20, 20), (4, 4, 36, 36)], img_shape=(40, 40)),
               sample_with([], img_shape=(40, 40))]
    kw = dict(num_pairs=1, min_area=10, placement='static', seed=0, min_kept_area=1)
    _, new, _ = ARPInstanceMixer(paste_order='instance', occlusion='exclusive', **kw)(
        inputs, samples)
    # Official: the big one, pasted last, lies on top and hides the small one entirely.
    assert new[1].gt_instances.labels.tolist() == [1]
    # mmssis default (largest first): the small one ends on top and stays.
    _, new2, _ = ARPInstanceMixer(**kw)(inputs, samples)
    assert new2[1].gt_instances.labels.tolist() == [1, 0]
    with pytest.raises(ValueError, match='paste_order'):
        ARPInstanceMixer(paste_order='random')
    with pytest.raises(ValueError, match='occlusion'):
        ARPInstanceMixer(occlusion='none')


def test_images_without_instances_and_padded_masks():
    inputs = torch.randn(4, 3, 64, 64)
    # Mask2Former-style: masks padded to the 64 x 64 batch shape, img_shape 48 x 56.
    samples = [sample_with([], img_shape=(48, 56), mask_shape=(64, 64)),
               sample_with([(0, 0, 40, 40)], img_shape=(48, 56), mask_shape=(64, 64)),
               sample_with([], img_shape=(48, 56), mask_shape=(64, 64)),
               sample_with([], img_shape=(48, 56), mask_shape=(64, 64))]
    mixer = ARPInstanceMixer(num_pairs=2, min_area=100, max_translate=0.5, seed=0)
    out, new, stats = mixer(inputs, samples)
    assert stats['arp_pairs'] == 2 and stats['arp_pasted'] == 1
    for s in new:
        assert s.gt_instances.masks.masks.shape[1:] == (64, 64)
        m = masks_of(s)
        assert not m[:, 48:].any() and not m[:, :, 56:].any(), 'never paste into padding'
    check_boxes_match_masks(new)
    # Padding pixels of the images are untouched.
    assert torch.equal(out[:, :, 48:], inputs[:, :, 48:])
    assert torch.equal(out[:, :, :, 56:], inputs[:, :, :, 56:])


def test_pair_count_and_prob():
    assert [ARPInstanceMixer().pairs_for(b) for b in (1, 2, 4, 8, 9)] == [0, 1, 1, 2, 2]
    assert ARPInstanceMixer(num_pairs=0.5).pairs_for(8) == 4
    assert ARPInstanceMixer(num_pairs=10).pairs_for(6) == 3
    with pytest.raises(ValueError):
        ARPInstanceMixer(num_pairs=1.5)
    inputs, samples = two_image_batch()
    out, new, _ = ARPInstanceMixer(min_area=1, prob=0.0, seed=0)(inputs, samples)
    assert out is inputs and new is samples


def test_mixer_is_stateless_for_checkpoints():
    model = build_semi(min_area=1)
    assert model.instance_mixer is not None
    assert not any('mixer' in k for k in model.state_dict())


def build_semi(**mixer):
    cfg = dict(
        type='SemiMaskDetector',
        detector=tiny_mask_rcnn_cfg(),
        data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                               data_preprocessor=tiny_mask_rcnn_cfg()['data_preprocessor']),
        semi_train_cfg=dict(score_thr=0.0,
                            instance_mixer=dict(type='ARPInstanceMixer', seed=0, **mixer)),
        semi_test_cfg=dict(predict_on='student'))
    with DefaultScope.overwrite_default_scope('mmssis'):
        torch.manual_seed(0)
        return MODELS.build(ConfigDict(cfg))


def test_semi_mask_detector_loss_with_arp():
    model = build_semi(min_area=20, max_translate=0.3)
    model.train()
    inputs, samples = make_semi_batch(batch=2)
    losses = model.loss(inputs, samples)
    assert losses['arp_pairs'] == 1
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert any(p.grad is not None for p in model.student.parameters())


def test_static_placement_keeps_position_and_scale():
    """`placement='static'` (official Cityscapes): a pasted instance lands where it was."""
    inputs = torch.stack([torch.full((3, 64, 64), 1.0), torch.full((3, 64, 64), 2.0)])
    samples = [sample_with([(10, 12, 40, 44)]), sample_with([])]
    for seed in range(3):
        mixer = ARPInstanceMixer(num_pairs=1, min_area=10, placement='static', seed=seed)
        out, out_samples, _ = mixer(inputs, samples)
        m = masks_of(out_samples[1])
        assert m.shape[0] == 1 and torch.equal(m[0], box_mask((64, 64), (10, 12, 40, 44)))
        assert torch.equal(out[1][:, m[0]], torch.ones(3, int(m[0].sum())))


def test_uniform_placement_covers_the_image_and_stays_inside():
    """`placement='uniform'` (official COCO): any position that keeps the box inside."""
    inputs = torch.stack([torch.full((3, 64, 64), 1.0), torch.full((3, 64, 64), 2.0)])
    samples = [sample_with([(2, 2, 22, 22)]), sample_with([])]
    mixer = ARPInstanceMixer(num_pairs=1, min_area=10, placement='uniform',
                             scale_range=(1.0, 1.0), seed=0)
    corners = set()
    for step in range(40):
        set_train_step(step)
        _, out_samples, _ = mixer(inputs, samples)
        box = out_samples[1].gt_instances.bboxes[0].tolist()
        assert box[2] - box[0] == 20 and box[3] - box[1] == 20
        assert 0 <= box[0] and box[2] <= 64 and 0 <= box[1] and box[3] <= 64
        corners.add((int(box[0]) // 15, int(box[1]) // 15))  # 3 x 3 bins over [0, 44]
    # Relative placement keeps the source corner; uniform reaches every part of the image.
    assert len(corners) >= 7
    with pytest.raises(ValueError, match='placement'):
        ARPInstanceMixer(placement='random')
