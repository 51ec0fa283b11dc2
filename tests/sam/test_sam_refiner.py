import pytest
import torch

from mmssis.registry import MODELS
from mmssis.sam import (EmbeddingCache, RefinedInstances, SamMaskRefiner, SamModelBackend,
                        sample_points_from_logits)
from mmssis.structures import boxes_to_masks, masks_to_boxes
from mmssis.testing import build_echo_sam, build_tiny_sam


def _teacher(h=300, w=500):
    """Teacher logits for 3 instances (rectangles) and their boxes (xyxy)."""
    boxes = torch.tensor([[50., 40., 150., 120.], [300., 100., 450., 280.],
                          [200., 200., 240., 230.]])
    masks = boxes_to_masks(boxes, (h, w))
    noise = torch.randn(3, h, w, generator=torch.Generator().manual_seed(0))
    logits = torch.where(masks, 2.0, -4.0) + 0.1 * noise
    return logits, boxes


def test_refiner_box_prompt_echo_returns_consistent_boxes(echo_backend, image):
    refiner = SamMaskRefiner(echo_backend, use_box=True, seed=0)
    logits, boxes = _teacher()
    res = refiner.refine(image, logits, boxes)
    assert isinstance(res, RefinedInstances)
    masks, iou, from_sam, given = res  # unpackable
    out_boxes = res.boxes  # of the refined masks, computed on access
    assert given is boxes
    assert masks.shape == (3, 300, 500) and masks.dtype == torch.bool
    assert torch.equal(out_boxes, masks_to_boxes(masks))
    assert (out_boxes - boxes).abs().max() <= 1.5  # echo SAM reproduces the prompt box
    assert torch.allclose(iou, torch.full((3,), 0.9))  # best of (0.5, 0.9, 0.7)
    assert from_sam.all()


def test_refiner_points_only_echo_uses_sampled_points(image):
    backend = SamModelBackend(build_echo_sam(radius=1))
    refiner = SamMaskRefiner(backend, num_points=3, use_box=False, seed=0)
    logits, _ = _teacher()
    res = refiner.refine(image, logits)
    # echo draws small squares around the sampled points: all inside the teacher box
    teacher = logits > 0
    for i in range(3):
        assert res.masks[i].any()
        assert (res.masks[i] & ~boxes_to_masks(masks_to_boxes(teacher[i:i + 1]).add(
            torch.tensor([-4., -4., 4., 4.])), (300, 500))[0]).sum() == 0


def test_iou_gate_keeps_teacher(image):
    backend = SamModelBackend(build_echo_sam(iou_values=(0.1, 0.3, 0.2), best_index=1))
    logits, boxes = _teacher()
    gated = SamMaskRefiner(backend, use_box=True, iou_thr=0.5, seed=0).refine(image, logits, boxes)
    assert not gated.from_sam.any()
    assert torch.equal(gated.masks, logits > 0)
    assert torch.allclose(gated.iou_pred, torch.full((3,), 0.3))
    open_gate = SamMaskRefiner(backend, use_box=True, iou_thr=0.25, seed=0).refine(
        image, logits, boxes)
    assert open_gate.from_sam.all()


def test_one_encode_one_decode_per_image(tiny_backend, image, count_calls):
    enc = count_calls(tiny_backend.model.image_encoder)
    dec = count_calls(tiny_backend.model.mask_decoder)
    refiner = SamMaskRefiner(tiny_backend, use_box=True, seed=0)
    logits, boxes = _teacher()
    res = refiner(image, logits, boxes)
    assert (enc.calls, dec.calls) == (1, 1)
    assert torch.equal(res.boxes[res.masks.flatten(1).any(1)],
                       masks_to_boxes(res.masks)[res.masks.flatten(1).any(1)])
    # precomputed embedding: decoder only
    emb = refiner.encode(image)
    refiner.refine_embedding(emb, logits, boxes)
    assert (enc.calls, dec.calls) == (2, 2)


def test_empty_instances(tiny_backend, image, count_calls):
    enc = count_calls(tiny_backend.model.image_encoder)
    refiner = SamMaskRefiner(tiny_backend)
    res = refiner.refine(image, torch.zeros((0, 300, 500)), torch.zeros((0, 4)))
    assert res.masks.shape == (0, 300, 500) and res.boxes.shape == (0, 4)
    assert res.iou_pred.shape == (0,) and enc.calls == 0


def test_size_mismatch_raises(tiny_backend, image):
    refiner = SamMaskRefiner(tiny_backend)
    with pytest.raises(ValueError, match='embedding was computed'):
        refiner.refine(image, torch.zeros((1, 100, 100)))


def test_box_only_backend_gets_boxes(image):
    backend = SamModelBackend(build_echo_sam(), requires_box=True)
    refiner = SamMaskRefiner(backend, use_box=False, seed=0)
    logits, boxes = _teacher()
    res = refiner.refine(image, logits)  # box derived from the teacher mask
    assert (res.boxes - boxes).abs().max() <= 1.5


def test_seeded_refiner_is_reproducible(tiny_backend, image):
    logits, boxes = _teacher()
    a = SamMaskRefiner(tiny_backend, seed=3).refine(image, logits, boxes)
    b = SamMaskRefiner(tiny_backend, seed=3).refine(image, logits, boxes)
    assert torch.equal(a.masks, b.masks) and torch.equal(a.iou_pred, b.iou_pred)


def test_build_from_config_bgr_image_and_cache(image):
    refiner = MODELS.build(dict(type='SamMaskRefiner',
                                backend=dict(type='SamModelBackend', sam=build_echo_sam()),
                                num_points=2, use_box=True, iou_thr=0.5, seed=0,
                                cache=dict(max_items=4)))
    assert isinstance(refiner, SamMaskRefiner) and isinstance(refiner.cache, EmbeddingCache)
    _, boxes = _teacher()
    logits = torch.where(boxes_to_masks(boxes, (300, 500)), 1.0, -1.0)  # binary masks
    res = refiner.refine(image[..., ::-1], logits, boxes, cache_key='img0', channel_order='bgr')
    assert res.masks.shape == (3, 300, 500)
    assert (res.boxes - boxes).abs().max() <= 1.5
    refiner.refine(image[..., ::-1], logits, boxes, cache_key='img0', channel_order='bgr')
    assert refiner.cache.stats()['hits'] == 1


def test_refiner_selects_highest_iou_mask_real_tiny_sam(image):
    backend = SamModelBackend(build_tiny_sam(seed=1))
    logits, boxes = _teacher()
    refiner = SamMaskRefiner(backend, use_box=True, seed=0)
    res = refiner.refine(image, logits, boxes)
    # replay the refiner's draw (the step's derived generator) and decode directly
    pts, labels = sample_points_from_logits(logits, 3, generator=refiner.point_generator(),
                                            fallback_boxes=boxes)
    masks, iou = backend.decode(backend.encode(image), boxes=boxes, points=pts,
                                point_labels=labels, multimask=True)
    best = iou.argmax(1)
    torch.testing.assert_close(res.iou_pred, iou.max(1).values)
    expected = masks[torch.arange(3), best]
    expected = torch.where(expected.flatten(1).any(1)[:, None, None], expected, logits > 0)
    assert torch.equal(res.masks, expected)


def test_teacher_agreement_gate(image):
    # The echo SAM draws the prompt box; a teacher mask that is a thin ring inside its
    # box overlaps the drawn box little, so a high min_teacher_iou keeps the teacher's.
    backend = SamModelBackend(build_echo_sam())
    logits, boxes = _teacher()
    ring = logits.clone()
    ring[:, 60:240, 60:440] = -5.0  # hollow out: teacher masks become thin frames
    free = SamMaskRefiner(backend, use_box=True, multimask=False, seed=0).refine(
        image, ring, boxes)
    agree = (free.masks & (ring > 0)).flatten(1).sum(1).float() / \
        (free.masks | (ring > 0)).flatten(1).sum(1).float()
    gated = SamMaskRefiner(backend, use_box=True, multimask=False, seed=0,
                           min_teacher_iou=float(agree.max()) + 1e-3).refine(image, ring, boxes)
    assert free.from_sam.any() and not gated.from_sam.any()
    assert torch.equal(gated.masks, ring > 0)


def test_mean_prob_fusion_votes_with_confidence(echo_backend, image):
    """'mean_prob': a pixel is foreground when the mean of the two probabilities >= 0.5."""
    h, w = 300, 500
    box = torch.tensor([[100., 50., 300., 250.]])  # the prompt box (echo SAM: logit +10 in it)
    logits = torch.full((1, h, w), -4.0)  # teacher: unsure background ...
    logits[0, 60:240, 110:290] = 3.0  # ... a confident-enough object inside the box ...
    logits[0, 50:250, 280:300] = -20.0  # ... and a strip it is very sure is background
    replace = SamMaskRefiner(echo_backend, use_box=True, seed=0).refine(image, logits, box)
    fused = SamMaskRefiner(echo_backend, use_box=True, seed=0,
                           fusion='mean_prob').refine(image, logits, box)
    sam_box = replace.masks[0]
    assert sam_box[50:250, 100:300].float().mean() > 0.97  # replace: SAM's whole box
    # fused: SAM's box, except where the teacher is more certain of background than SAM
    # is of foreground (sigmoid(-20) + sigmoid(10) < 1)
    assert not fused.masks[0, 50:250, 280:300].any()
    assert fused.masks[0, 53:247, 103:277].all()  # unsure teacher background follows SAM
    assert not fused.masks[0][~sam_box].any()  # never outside SAM's mask here
    # only SAM's soft (bilinearly upsampled) box rim and the strip differ from 'replace'
    assert (sam_box & ~fused.masks[0]).sum() <= 200 * 20 + 2 * (200 + 200) * 2
    assert torch.equal(fused.boxes, masks_to_boxes(fused.masks))
    with pytest.raises(ValueError, match='fusion'):
        SamMaskRefiner(echo_backend, fusion='average')


def test_box_margin_loosens_the_prompt_boxes_within_the_image(echo_backend, image):
    """``box_margin``: SAM gets each teacher box grown by the margin, clamped to the image;
    0 (official) gives the box as it is."""
    logits, boxes = _teacher()  # image 300 x 500; the last box is 10 px from nothing
    boxes = torch.cat([boxes, torch.tensor([[2., 3., 40., 296.]])])
    logits = torch.cat([logits, torch.where(boxes_to_masks(boxes[3:], (300, 500)), 2.0, -4.0)])
    plain = SamMaskRefiner(echo_backend, use_box=True, seed=0).refine(image, logits, boxes)
    loose = SamMaskRefiner(echo_backend, use_box=True, seed=0,
                           box_margin=6).refine(image, logits, boxes)
    grown = boxes + torch.tensor([-6., -6., 6., 6.])
    grown[:, 0::2] = grown[:, 0::2].clamp(0, 500)
    grown[:, 1::2] = grown[:, 1::2].clamp(0, 300)
    assert (plain.boxes - boxes).abs().max() <= 1.5  # echo SAM draws its prompt box
    assert (loose.boxes - grown).abs().max() <= 1.5
    assert loose.boxes[3, 0] == 0 and loose.boxes[3, 3] == 300  # clamped to the image
    assert torch.equal(loose.prompt_boxes, boxes)  # the teacher boxes are reported as given
    with pytest.raises(ValueError, match='box_margin'):
        SamMaskRefiner(echo_backend, box_margin=-1)
