"""SamBenefitHook: measured per class, decides what SAM refines, resumes from checkpoints."""

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.structures import InstanceData

import mmssis.models.detectors.semi_mask_detector as semi_mod
from mmssis.engine.hooks import SamBenefitHook
from mmssis.engine.hooks.sam_benefit_hook import CKPT_META_KEY
from mmssis.registry import MODELS
from mmssis.testing import echo_box_refiner, tiny_mask_rcnn_cfg
from mmssis.testing.tiny_run import hook_runner

CLASSES = ('disc', 'square', 'triangle', 'star')
HELPED = 0  # SAM restores this class (striped teacher masks); it hurts the exact others


def _loader_cfg(demo, batch_size: int = 4) -> dict:
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='Resize', scale=(256, 256), keep_ratio=True),
                dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                dict(type='PackDetInputs',
                     meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                'scale_factor'))]
    return dict(batch_size=batch_size, num_workers=0, persistent_workers=False,
                sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=dict(type='CheckedCocoDataset', data_root=demo.root,
                             ann_file=demo.train_ann, data_prefix=dict(img='images/'),
                             test_mode=True, metainfo=dict(classes=CLASSES),
                             pipeline=pipeline))


def _striped_teacher(teacher, inputs, samples):
    """GT masks at the view; class ``HELPED`` with every third band of 4 rows removed
    (bands survive the bilinear step to the GT frame; about the same tight box, IoU ~0.67:
    the box-drawing SAM's box is better), the others exact (SAM's box can only lose)."""
    out = []
    for sample in samples:
        gt = sample.gt_instances
        h, w = sample.metainfo['img_shape'][:2]
        masks = torch.as_tensor(gt.masks.resize((h, w)).to_ndarray()).bool()
        stripes = torch.ones((h, w), dtype=torch.bool)
        stripes[(torch.arange(h) // 4) % 3 == 1] = False
        helped = (gt.labels == HELPED)[:, None, None]
        masks = torch.where(helped, masks & stripes, masks)
        out.append(InstanceData(bboxes=torch.zeros(len(gt), 4), labels=gt.labels,
                                scores=torch.full((len(gt), ), 0.9),
                                mask_logits=torch.where(masks, 5.0, -5.0)))
    return out


def _model(policy: str = 'measured'):
    """Tiny semi Mask R-CNN whose refiner prompts the box-drawing echo SAM with boxes."""
    det = tiny_mask_rcnn_cfg(num_classes=len(CLASSES))
    cfg = dict(type='SemiMaskDetector', detector=det,
               data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                                      data_preprocessor=det['data_preprocessor']))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmssis'):
        model = MODELS.build(ConfigDict(cfg))
    # as the detector stores it
    object.__setattr__(model, '_sam_refiner', echo_box_refiner(policy=policy))
    return model


def _runner(model, tmp_path, it: int = 0):
    return hook_runner(model, str(tmp_path / 'work'), it)


@pytest.fixture(autouse=True)
def _mmssis_scope():
    with DefaultScope.overwrite_default_scope('mmssis'):
        yield


def test_measured_policy_refines_the_class_sam_helps_and_not_the_others(
        tiny_demo, monkeypatch, tmp_path):
    monkeypatch.setattr(semi_mod, 'teacher_pseudo_instances', _striped_teacher)
    model = _model('measured')
    runner = _runner(model, tmp_path)
    hook = SamBenefitHook(dataloader=_loader_cfg(tiny_demo), max_images=12, min_support=5)
    hook.before_train(runner)  # measures at iteration 0

    table = hook.table
    assert table['num'][HELPED] >= 5
    assert table['gain'][HELPED] > 0.1 and table['worse'][HELPED] == 0
    others = [c for c in range(len(CLASSES)) if c != HELPED and table['num'][c] >= 5]
    assert others, 'the tiny demo has enough instances of another class'
    for c in others:
        assert table['teacher_iou'][c] == pytest.approx(1.0) and table['gain'][c] <= 0
    assert hook.decisions[HELPED] is True
    assert all(hook.decisions[c] is False for c in others)
    enabled = model.sam_refiner.class_enabled
    assert enabled[HELPED] and not any(enabled[c] for c in others)

    # the training path: SAM's masks for the helped class only
    changed = {True: 0, False: 0}
    sent = []
    for data in Runner.build_dataloader(_loader_cfg(tiny_demo)):
        batch = model.data_preprocessor(data, False)
        record = model.pseudo_label(batch['inputs'], batch['data_samples'])
        sent.append(record.stats['unsup_sam_sent'])
        for kept, refined, rows in zip(record.kept, record.refined, record.refined_rows):
            teacher = kept[rows]
            for label, t_mask, r_mask in zip(teacher.labels, teacher.masks, refined.masks):
                same = torch.equal(t_mask, r_mask)
                if int(label) == HELPED:
                    changed[True] += not same
                else:
                    assert same, 'a class SAM does not help kept its teacher mask'
                    changed[False] += 1
    assert changed[True] > 0 and changed[False] > 0
    assert 0 < np.mean(sent) < 1

    # visible: scalars, the figure, the table in the log
    hub = runner.message_hub
    assert hub.get_scalar('sam_benefit/refine_disc').current() == 1.0
    assert hub.get_scalar(f'sam_benefit/refine_{CLASSES[others[0]]}').current() == 0.0
    assert 0 < hub.get_scalar('sam_benefit/refined_share').current() < 1
    assert (tmp_path / 'work' / 'calibration' / 'sam_benefit_iter_0.png').is_file()
    assert hub.get_info('sam_benefit')['enabled'] == enabled


def test_always_and_never_policies_only_report(tiny_demo, monkeypatch, tmp_path):
    monkeypatch.setattr(semi_mod, 'teacher_pseudo_instances', _striped_teacher)
    for policy in ('always', 'never'):
        model = _model(policy)
        runner = _runner(model, tmp_path)
        hook = SamBenefitHook(dataloader=_loader_cfg(tiny_demo), max_images=12)
        hook.before_train(runner)
        assert hook.decisions[HELPED] is True and hook.policy == policy
        assert model.sam_refiner.class_enabled is None  # decisions not applied
        loader = Runner.build_dataloader(_loader_cfg(tiny_demo))
        batch = model.data_preprocessor(next(iter(loader)), False)
        record = model.pseudo_label(batch['inputs'], batch['data_samples'])
        same = [torch.equal(k[r].masks, f.masks)
                for k, f, r in zip(record.kept, record.refined, record.refined_rows)]
        assert all(same) == (policy == 'never')


def test_measuring_leaves_the_refiners_point_sampling_alone(tiny_demo, monkeypatch,
                                                            tmp_path):
    monkeypatch.setattr(semi_mod, 'teacher_pseudo_instances', _striped_teacher)
    model = _model('measured')
    model.sam_refiner.num_points = 2  # point prompts draw from the generator
    before = torch.rand(8, generator=model.sam_refiner.point_generator('x.jpg', 0))
    SamBenefitHook(dataloader=_loader_cfg(tiny_demo), max_images=4).before_train(
        _runner(model, tmp_path))
    # derived per step and image: the training draws are those of before the measurement
    after = torch.rand(8, generator=model.sam_refiner.point_generator('x.jpg', 0))
    assert torch.equal(after, before)


def test_state_round_trips_through_checkpoint(tiny_demo, monkeypatch, tmp_path):
    monkeypatch.setattr(semi_mod, 'teacher_pseudo_instances', _striped_teacher)
    model = _model('measured')
    runner = _runner(model, tmp_path, it=100)
    hook = SamBenefitHook(dataloader=_loader_cfg(tiny_demo), max_images=12,
                          measure_at_start=False)
    hook.before_train(runner)
    assert hook.enabled is None and model.sam_refiner.class_enabled is None
    hook.measure(runner, 100)
    ckpt = {'meta': {'iter': 100}}
    hook.before_save_checkpoint(runner, ckpt)
    path = str(tmp_path / 'ckpt.pth')
    torch.save(ckpt, path)
    ckpt = torch.load(path, weights_only=True)  # plain Python only
    assert ckpt['meta'][CKPT_META_KEY]['iter'] == 100

    # --resume: the decisions are restored before the first iteration, the slice is not
    # touched (an empty loader would leave every class undecided: nothing refined)
    resumed_model = _model('measured')
    resumed = _runner(resumed_model, tmp_path, it=100)
    new_hook = SamBenefitHook(dataloader=[], measure_at_start=True)
    new_hook.after_load_checkpoint(resumed, ckpt)
    new_hook.before_train(resumed)
    assert resumed_model.sam_refiner.class_enabled == hook.enabled
    assert resumed_model.sam_refiner.class_enabled[HELPED]
    assert new_hook.decisions == hook.decisions and new_hook.last_iter == 100
    np.testing.assert_allclose(new_hook.table['gain'], hook.table['gain'])

    # load_from (iteration 0) starts fresh and measures
    fresh_model = _model('measured')
    fresh = _runner(fresh_model, tmp_path, it=0)
    fresh_hook = SamBenefitHook(dataloader=[], measure_at_start=True)
    fresh_hook.after_load_checkpoint(fresh, ckpt)
    fresh_hook.before_train(fresh)
    assert fresh_hook.last_iter == 0 and fresh_model.sam_refiner.class_enabled == [False] * 4

    # a checkpoint of another class count is refused
    other = _runner(_model('measured'), tmp_path, it=100)
    bad = dict(ckpt['meta'][CKPT_META_KEY], enabled=[True, False])
    bad_hook = SamBenefitHook(dataloader=[])
    bad_hook.after_load_checkpoint(other, {'meta': {CKPT_META_KEY: bad}})
    with pytest.raises(ValueError, match='2 classes, the model has 4'):
        bad_hook.before_train(other)


def test_measured_policy_without_the_hook_is_an_error(tiny_demo, monkeypatch):
    monkeypatch.setattr(semi_mod, 'teacher_pseudo_instances', _striped_teacher)
    model = _model('measured')
    loader = Runner.build_dataloader(_loader_cfg(tiny_demo))
    batch = model.data_preprocessor(next(iter(loader)), False)
    with pytest.raises(RuntimeError, match='SamBenefitHook'):
        model.pseudo_label(batch['inputs'], batch['data_samples'])


def test_hook_needs_a_refiner(tmp_path):
    det = tiny_mask_rcnn_cfg(num_classes=len(CLASSES))
    model = MODELS.build(ConfigDict(
        type='SemiMaskDetector', detector=det,
        data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                               data_preprocessor=det['data_preprocessor'])))
    with pytest.raises(ValueError, match='needs a SAM refiner'):
        SamBenefitHook(dataloader=[]).before_train(_runner(model, tmp_path))
