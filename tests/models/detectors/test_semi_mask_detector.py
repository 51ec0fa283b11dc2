"""SemiMaskDetector: pseudo-mask filtering, projection, losses, two-stage loading."""
import copy

import numpy as np
import pytest
import torch
from mmdet.structures.mask import BitmapMasks
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from mmssis.registry import MODELS
from mmssis.structures import masks_to_boxes
from mmssis.testing import make_semi_batch, tiny_mask_rcnn_cfg


def build(score_thr=0.7, **extra):
    cfg = dict(
        type='SemiMaskDetector',
        detector=tiny_mask_rcnn_cfg(),
        data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                               data_preprocessor=tiny_mask_rcnn_cfg()['data_preprocessor']),
        semi_train_cfg=dict(score_thr=score_thr, **extra),
        semi_test_cfg=dict(predict_on='student'))
    with DefaultScope.overwrite_default_scope('mmssis'):
        torch.manual_seed(0)
        return MODELS.build(ConfigDict(cfg))


@pytest.fixture(scope='module')
def model():
    return build()


def test_filter_keeps_confident_large_masks(model):
    logits = torch.full((3, 20, 20), -5.0)
    logits[0, 2:10, 2:10] = 5.0  # 64 px, confident
    logits[1, 2:10, 2:10] = 5.0  # 64 px, low score
    logits[2, 0:2, 0:2] = 5.0  # 4 px: too small (min_mask_area=5)
    inst = InstanceData(scores=torch.tensor([0.9, 0.5, 0.95]), labels=torch.tensor([0, 1, 2]),
                        bboxes=torch.zeros(3, 4), mask_logits=logits)
    kept = model.filter_pseudo_instances(inst)
    assert len(kept) == 1
    assert kept.masks.dtype == torch.bool and kept.masks[0].sum() == 64
    # the teacher's boxes are dropped: boxes are computed once, for the student's targets
    assert 'bboxes' not in kept


def test_per_class_thresholds(model):
    inst = InstanceData(scores=torch.tensor([0.5, 0.5]), labels=torch.tensor([0, 1]),
                        bboxes=torch.zeros(2, 4), mask_logits=torch.full((2, 8, 8), 5.0))
    model.class_score_thr = torch.tensor([0.4, 0.6, 0.6])
    try:
        assert model.filter_pseudo_instances(inst).labels.tolist() == [0]
    finally:
        model.class_score_thr = None


def test_projection_flips_masks_and_boxes(model):
    inputs, samples = make_semi_batch(batch=1)
    t = samples['unsup_teacher'][0]
    masks = torch.zeros(1, 64, 64, dtype=torch.bool)
    masks[0, 10:20, 5:15] = True
    t.gt_instances = InstanceData(masks=masks, labels=torch.tensor([1]),
                                  scores=torch.tensor([0.9]), bboxes=torch.zeros(1, 4))
    out = model.project_pseudo_instances([t], samples['unsup_student'])[0].gt_instances
    # Projection keeps bool tensors on the masks' device (one conversion ends pseudo_label).
    assert isinstance(out.masks, torch.Tensor) and out.masks.dtype == torch.bool
    assert torch.equal(out.masks, torch.flip(masks, dims=[2]))
    assert 'bboxes' not in out  # computed once, after the last stage (ARP)
    model._to_student_targets(samples['unsup_student'])
    assert out.bboxes[0].tolist() == [49.0, 10.0, 59.0, 20.0]


@pytest.mark.parametrize('score_thr', [0.0, 1.01], ids=['with-pseudo', 'empty-pseudo'])
def test_loss_runs_and_backprops(score_thr):
    model = build(score_thr=score_thr)
    model.train()
    inputs, samples = make_semi_batch(batch=2)
    losses = model.loss(inputs, samples)
    assert any(k.startswith('sup_') for k in losses)
    assert any(k.startswith('unsup_loss') for k in losses)
    if score_thr > 1:
        assert losses['unsup_pseudo_num'].item() == 0
    else:
        assert losses['unsup_pseudo_num'].item() > 0
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.student.parameters() if p.grad is not None]
    assert grads, 'student must receive gradients'
    assert all(p.grad is None for p in model.teacher.parameters())


def test_plain_checkpoint_initialises_teacher_only(model):
    stage1 = copy.deepcopy(model.teacher)
    with torch.no_grad():
        for p in stage1.parameters():
            p.add_(1.0)
    student_before = {k: v.clone() for k, v in model.student.state_dict().items()}
    model.load_state_dict(stage1.state_dict(), strict=True)
    for k, v in stage1.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k
    for k, v in model.student.state_dict().items():
        assert torch.equal(student_before[k], v), k


def test_plain_checkpoint_initialises_both_with_init_student_from_teacher():
    model = build(init_student_from_teacher=True)
    stage1 = copy.deepcopy(model.teacher)
    with torch.no_grad():
        for p in stage1.parameters():
            p.add_(1.0)
    model.load_state_dict(stage1.state_dict(), strict=True)
    for k, v in stage1.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k
        assert torch.equal(model.student.state_dict()[k], v), k


def test_semi_checkpoint_loads_both(model):
    other = build()
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.5)
    model.load_state_dict(other.state_dict())
    for k, v in other.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_uncertain_detections_become_ignored_regions_in_student_view():
    model = build(ignore_score_thr=0.3)
    logits = torch.full((4, 64, 64), -5.0)
    logits[0, 10:20, 5:15] = 5.0  # kept (0.9)
    logits[1, 40:50, 40:60] = 5.0  # uncertain (0.5): an ignore region
    logits[2, 10:20, 5:16] = 5.0  # uncertain duplicate of the kept one: dropped
    logits[3, 30:40, 20:30] = 5.0  # below ignore_score_thr (0.1): background
    inst = InstanceData(scores=torch.tensor([0.9, 0.5, 0.6, 0.1]),
                        labels=torch.tensor([0, 1, 0, 2]), bboxes=torch.zeros(4, 4),
                        mask_logits=logits)
    kept = model.filter_pseudo_instances(inst)
    ignored = model.uncertain_pseudo_instances(inst, kept)
    assert ignored.scores.tolist() == [0.5]
    assert masks_to_boxes(ignored.masks).tolist() == [[40.0, 40.0, 60.0, 50.0]]
    # carried into the (flipped) student view as mmdet ignored_instances
    inputs, samples = make_semi_batch(batch=1)
    t = samples['unsup_teacher'][0]
    t.gt_instances = kept
    t.pseudo_ignored_instances = ignored
    out = model.project_pseudo_instances([t], samples['unsup_student'])[0]
    assert out.ignored_instances.bboxes.tolist() == [[4.0, 40.0, 24.0, 50.0]]
    assert masks_to_boxes(out.gt_instances.masks).tolist() == [[49.0, 10.0, 59.0, 20.0]]
    # off by default
    assert build().uncertain_pseudo_instances(inst, kept) is None


def test_maskrcnn_pseudo_masks_are_at_the_cropped_view(model):
    """LSJ: resize x2 then crop to 64 x 64. mmdet pastes Mask R-CNN masks on the resized,
    uncropped canvas (ori_shape x scale_factor = 128 x 128); the pseudo-masks must be at the
    view's img_shape, where the boxes and the SAM view are."""
    from mmssis.models.detectors.pseudo_labels import maskrcnn_pseudo_instances
    inputs, samples = make_semi_batch(batch=2, img_shape=(64, 64))
    teacher_samples = samples['unsup_teacher']
    for s in teacher_samples:
        s.set_metainfo(dict(ori_shape=(64, 64), scale_factor=(2.0, 2.0)))
    model.teacher.eval()
    test_cfg = model.teacher.roi_head.test_cfg
    old_thr, test_cfg.score_thr = test_cfg.score_thr, 0.0
    try:
        out = maskrcnn_pseudo_instances(model.teacher, inputs['unsup_teacher'], teacher_samples)
    finally:
        test_cfg.score_thr = old_thr
    assert any(len(inst) for inst in out)
    for inst in out:
        assert inst.mask_logits.shape[1:] == (64, 64)
        # every pasted mask lies inside its box (boxes are in the cropped view's frame)
        fg = inst.mask_logits > 0
        for m, (x1, y1, x2, y2) in zip(fg, inst.bboxes.round().long().tolist()):
            outside = m.clone()
            outside[max(y1 - 1, 0):y2 + 1, max(x1 - 1, 0):x2 + 1] = False
            assert not outside.any()


def test_pseudo_masks_stay_tensors_until_one_conversion_at_the_end(monkeypatch):
    """Teacher -> projection -> ARP keep (N, H, W) bool tensors without boxes; after the last
    stage each student image's masks get their boxes once and become TensorMasks on the same
    device (no host copy, no BitmapMasks)."""
    from mmssis.models.augments import instance_mixer as mixer_module
    from mmssis.models.detectors import semi_mask_detector as det_module
    from mmssis.structures import TensorMasks, masks_to_boxes
    from mmssis.testing import gt_teacher_pseudo_instances
    made, boxed = [], []

    class Counting(BitmapMasks):
        def __init__(self, *args, **kwargs):
            made.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(mixer_module, 'BitmapMasks', Counting)
    monkeypatch.setattr(det_module, 'masks_to_boxes',
                        lambda m, *a: boxed.append(len(m)) or masks_to_boxes(m, *a))
    host = []  # (H, W) of every host copy of a TensorMasks
    real_masks = TensorMasks.masks
    monkeypatch.setattr(TensorMasks, 'masks', property(
        lambda self: host.append(tuple(self.tensor.shape[1:])) or real_masks.fget(self)))
    monkeypatch.setattr(det_module, 'teacher_pseudo_instances', gt_teacher_pseudo_instances)
    seen = []
    real_paste = mixer_module.paste_instances

    def paste(dst_img, dst_masks, src_img, src_masks, *args, **kwargs):
        seen.append((type(dst_masks), type(src_masks)))
        return real_paste(dst_img, dst_masks, src_img, src_masks, *args, **kwargs)

    monkeypatch.setattr(mixer_module, 'paste_instances', paste)
    model = build(score_thr=0.0, instance_mixer=dict(type='ARPInstanceMixer', num_pairs=1,
                                                     min_area=1, seed=0))
    inputs, samples = make_semi_batch(batch=2)
    # GT of the labelled views stands in for the teacher's predictions on the weak views.
    for t, s in zip(samples['unsup_teacher'], samples['sup']):
        t.gt_instances = s.gt_instances
    record = model.pseudo_label(inputs['unsup_teacher'], samples['unsup_teacher'],
                                inputs['unsup_student'], samples['unsup_student'])
    assert seen and all(a is torch.Tensor and b is torch.Tensor for a, b in seen)
    assert not made and not host  # no BitmapMasks, no host copy
    assert len(boxed) == 2  # one box computation per student image, at the end
    for s in record.student_samples:
        gt = s.gt_instances
        assert isinstance(gt.masks, TensorMasks) and gt.masks.tensor.dtype == torch.bool
        assert torch.equal(gt.bboxes, masks_to_boxes(gt.masks.tensor))
    # the student's loss reads them as mmdet's ground truth (Mask R-CNN: crop_and_resize)
    model.train()
    losses = model.loss_by_pseudo_instances(record.student_inputs, record.student_samples)
    assert torch.isfinite(losses['unsup_loss_mask'])
    # only mmdet's (P, 28, 28) RoI targets go to the host (as for BitmapMasks ground truth)
    assert host and set(host) == {(28, 28)} and not made