"""SemiMaskDetector with a (tiny) Mask2Former student/teacher: one CPU training step.

The S4M / Guided Distillation configs train Mask2Former; this checks that the semi
detector's Mask2Former path (query-level pseudo-labels from the teacher's
``panoptic_head.predict``, pseudo masks padded to ``batch_input_shape`` for the student)
trains end to end: ``sup_``/``unsup_`` losses, a finite total, gradients only in the
student, and background-only pseudo-labels (``score_thr > 1``) still training.
"""
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope

from mmssis.registry import MODELS
from mmssis.testing import make_semi_batch, tiny_mask2former_cfg

NUM_CLASSES = 3


def build(score_thr: float = 0.7):
    detector = tiny_mask2former_cfg()
    cfg = dict(
        type='SemiMaskDetector',
        detector=detector,
        data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                               data_preprocessor=detector['data_preprocessor']),
        semi_train_cfg=dict(score_thr=score_thr, unsup_weight=2.0, min_mask_area=5),
        semi_test_cfg=dict(predict_on='student'))
    with DefaultScope.overwrite_default_scope('mmssis'):
        torch.manual_seed(0)
        return MODELS.build(ConfigDict(cfg))


def _total(losses: dict) -> torch.Tensor:
    return sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
               for k, v in losses.items() if 'loss' in k)


def _force_confident_teacher(model) -> None:
    """Make every teacher query predict class 0 with probability ~1.

    A randomly initialised teacher rarely passes a 0.7 score threshold; biasing the class
    layer guarantees non-empty pseudo-labels so the pseudo-label path is exercised (the
    random mask logits still give masks larger than ``min_mask_area``).
    """
    head = model.teacher.panoptic_head
    with torch.no_grad():
        head.cls_embed.weight.zero_()
        head.cls_embed.bias.fill_(-10.0)
        head.cls_embed.bias[0] = 10.0


@pytest.mark.parametrize('score_thr', [0.7, 1.01], ids=['with-pseudo', 'empty-pseudo'])
def test_mask2former_semi_step(score_thr):
    model = build(score_thr=score_thr)
    assert model.num_classes == NUM_CLASSES
    if score_thr <= 1:
        _force_confident_teacher(model)
    model.train()
    inputs, samples = make_semi_batch(batch=2, img_shape=(64, 64))
    losses = model.loss(inputs, samples)

    loss_keys = [k for k in losses if 'loss' in k]
    assert loss_keys and all(k.startswith(('sup_', 'unsup_')) for k in loss_keys), loss_keys
    assert any(k.startswith('sup_loss') for k in loss_keys)
    assert any(k.startswith('unsup_loss') for k in loss_keys)
    if score_thr > 1:
        assert losses['unsup_pseudo_num'].item() == 0
    else:
        assert losses['unsup_pseudo_num_teacher'] > 0
        assert losses['unsup_pseudo_num'].item() > 0  # survived projection + area filter
        # Masks of the student samples are padded to the batch input shape.
        for s in samples['unsup_student']:
            assert s.gt_instances.masks.masks.shape[-2:] == tuple(s.batch_input_shape)

    total = _total(losses)
    assert torch.isfinite(total)
    total.backward()
    student_grads = [p.grad for p in model.student.parameters() if p.grad is not None]
    assert student_grads, 'the student must receive gradients'
    assert all(torch.isfinite(g).all() for g in student_grads)
    assert all(p.grad is None for p in model.teacher.parameters()), \
        'the teacher must not receive gradients'


def test_mask2former_semi_predict_on_student():
    model = build()
    model.eval()
    inputs, samples = make_semi_batch(batch=1, img_shape=(64, 64))
    with torch.no_grad():
        out = model.predict(inputs['sup'], samples['sup'])
    assert 'masks' in out[0].pred_instances
