"""R18-R23: a wrong setup stops before iteration 0 through ``tools/train.py``, naming the key or
file and the fix (issue 22 section 2).

``tools/train.py``'s ``main()`` runs in this process (``runpy``) with a patched ``sys.argv``:
the config-level traps fail in its pre-flight (:mod:`mmssis.utils.preflight`) before the
runner exists (no work dir is created); the data traps fail when the runner builds the
training set (:class:`~mmssis.datasets.CheckedCocoDataset`), the misspelt ``semi_train_cfg``
key when it builds the model, both before any iteration.
"""
import glob
import json
import os.path as osp
import runpy
import shutil
import sys
import uuid

import pytest
import torch
from mmengine.config import Config

from mmssis.datasets.checked_coco import check_annotation
from mmssis.registry import DATASETS
from mmssis.testing.tiny_run import DEMO_SEMI_CONFIG, DEMO_SUP_CONFIG
from mmssis.utils.preflight import (SetupError, check_before_training, check_class_counts,
                                    check_teacher_checkpoint, checkpoint_class_count,
                                    is_stage2)
from rel_configs import REPO

TRAIN = osp.join(REPO, 'tools', 'train.py')
LABELLED = 'annotations/instances_train.1@8.json'  # the demo's labelled split: 1 image, 4 objects
CUSTOM_SEMI = osp.join(REPO, 'configs/custom/s4m_mask-rcnn_r50_fpn_180k_semi-custom.py')
# Small, fast runner settings for the runs that get as far as building the runner.
FAST = ['train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False']


@pytest.fixture(scope='module')
def train_main():
    """``tools/train.py``'s ``main`` (imported once)."""
    return runpy.run_path(TRAIN, run_name='train_under_test')['main']


@pytest.fixture
def run_train(train_main, monkeypatch, tmp_path):
    """``run_train(config, *options, extra=[...])``: ``tools/train.py CONFIG --work-dir W
    --cfg-options ...`` in this process; returns the work dir."""
    monkeypatch.setenv('LOCAL_RANK', '0')  # main() sets it; restored afterwards
    work = tmp_path / 'work'

    def run(config, *options, extra=()):
        argv = [TRAIN, osp.join(REPO, config), '--work-dir', str(work), '--no-format-config',
                *extra]
        opts = [*options, f'visualizer.name=vis_{uuid.uuid4().hex[:8]}']
        monkeypatch.setattr(sys, 'argv', argv + ['--cfg-options', *opts])
        train_main()
        return work

    run.work = work
    return run


@pytest.fixture
def demo_copy(tiny_demo, tmp_path, monkeypatch):
    """A writable copy of the tiny demo set that the demo configs read (MMSSIS_DEMO_ROOT)."""
    root = tmp_path / 'demo'
    shutil.copytree(tiny_demo.root, root)
    monkeypatch.setenv('MMSSIS_DEMO_ROOT', str(root) + '/')
    return root


def _edit_json(root, name, edit):
    path = osp.join(str(root), name)
    with open(path) as f:
        doc = json.load(f)
    edit(doc)
    with open(path, 'w') as f:
        json.dump(doc, f)
    return path


def _fake_checkpoint(path, rows, key='roi_head.bbox_head.fc_cls.weight'):
    """A checkpoint holding only a classifier of ``rows`` rows (classes + 1)."""
    torch.save(dict(state_dict={key: torch.zeros(rows, 8), 'backbone.w': torch.zeros(1)},
                    meta=dict()), str(path))
    return str(path)


def _demo_dataset(config, root, **overrides):
    ds = Config.fromfile(osp.join(REPO, config)).train_dataloader.dataset
    ds.update(data_root=str(root) + '/', pipeline=[], **overrides)
    return DATASETS.build(ds)


# ------------------------------------------------------------------ R18 untrained teacher
def test_stage2_without_teacher_checkpoint_fails_before_the_runner(run_train):
    with pytest.raises(SetupError) as err:
        run_train(DEMO_SEMI_CONFIG)
    msg = str(err.value)
    assert 'SemiMaskDetector' in msg and 'stage-1 checkpoint' in msg
    assert '--cfg-options load_from=<stage-1 .pth>' in msg
    assert 'allow_untrained_teacher = True' in msg  # the documented opt-out
    assert not run_train.work.exists()  # nothing built: the runner makes the work dir


def test_stage2_auto_resume_with_nothing_to_resume_fails(run_train, tmp_path):
    with pytest.raises(SetupError, match='--resume found no checkpoint'):
        run_train(DEMO_SEMI_CONFIG, extra=['--resume'])
    # `--resume` (no path) drops load_from: the teacher would still be random
    ckpt = _fake_checkpoint(tmp_path / 'stage1.pth', rows=5)
    with pytest.raises(SetupError, match='without a path it ignores load_from'):
        run_train(DEMO_SEMI_CONFIG, f'load_from={ckpt}', extra=['--resume'])


def test_untrained_teacher_opt_out_and_stage1_configs_pass_the_preflight():
    cfg = Config.fromfile(osp.join(REPO, DEMO_SEMI_CONFIG))
    cfg.allow_untrained_teacher = True
    check_before_training(cfg)
    check_before_training(Config.fromfile(osp.join(REPO, DEMO_SUP_CONFIG)))


def test_stage2_missing_load_from_file_is_named(run_train, tmp_path):
    missing = str(tmp_path / 'nope' / 'stage1.pth')
    with pytest.raises(SetupError, match=f'load_from={missing}: no such file'):
        run_train(DEMO_SEMI_CONFIG, f'load_from={missing}')


# ------------------------------------------------------------------ R19 teacher class count
def test_teacher_checkpoint_of_another_class_count_fails_naming_both(run_train, tmp_path):
    ckpt = _fake_checkpoint(tmp_path / 'stage1_3cls.pth', rows=4)  # 3 classes + background
    with pytest.raises(SetupError) as err:
        run_train(DEMO_SEMI_CONFIG, f'load_from={ckpt}')
    msg = str(err.value)
    assert ckpt in msg and 'trained for 3 classes' in msg
    assert 'has 4 (model.detector.roi_head.bbox_head.num_classes)' in msg
    assert 'size mismatch' in msg and 'same classes' in msg
    assert not run_train.work.exists()


@pytest.mark.parametrize('prefix', ['', 'teacher.', 'student.', 'module.'])
def test_checkpoint_class_count_reads_plain_and_stage2_checkpoints(tmp_path, prefix):
    ckpt = _fake_checkpoint(tmp_path / 'c.pth', rows=5,
                            key=prefix + 'roi_head.bbox_head.fc_cls.weight')
    assert checkpoint_class_count(ckpt) == (prefix + 'roi_head.bbox_head.fc_cls.weight', 4)
    cfg = Config.fromfile(osp.join(REPO, DEMO_SEMI_CONFIG))
    cfg.load_from = ckpt
    check_teacher_checkpoint(cfg)  # 4 classes: the demo's


def test_mask2former_teacher_checkpoint_class_count(tmp_path):
    cfg = Config(dict(model=dict(type='SemiMaskDetector', semi_train_cfg=dict(),
                                 detector=dict(panoptic_head=dict(num_things_classes=8,
                                                                  num_stuff_classes=0)))))
    cfg.load_from = _fake_checkpoint(tmp_path / 'm2f.pth', rows=81,
                                     key='teacher.panoptic_head.cls_embed.weight')
    with pytest.raises(SetupError, match=r'trained for 80 classes .* has 8 \(model.detector.'
                       r'panoptic_head.num_things_classes\)'):
        check_teacher_checkpoint(cfg)


# ------------------------------------------------------------------ R20 unknown categories
def _two_ellipses(doc):
    doc['categories'].append(dict(id=99, name='ellipse', supercategory='shape'))
    for ann in doc['annotations'][:2]:
        ann['category_id'] = 99


@pytest.mark.slow
def test_json_category_not_in_classes_fails_naming_it_and_its_count(run_train, demo_copy):
    ann = _edit_json(demo_copy, LABELLED, _two_ellipses)
    with pytest.raises(SetupError) as err:
        run_train(DEMO_SUP_CONFIG, 'model.backbone.pretrained=False', *FAST)
    msg = str(err.value)
    assert ann in msg and "'ellipse': 2" in msg and 'train as background' in msg
    assert 'metainfo=dict(classes=' in msg and "unknown_categories='drop'" in msg
    assert not list(run_train.work.rglob('*.pth'))


def test_unknown_categories_drop_is_counted(demo_copy, log_records):
    _edit_json(demo_copy, LABELLED, _two_ellipses)
    ds = _demo_dataset(DEMO_SUP_CONFIG, demo_copy, unknown_categories='drop')
    assert len(ds.get_data_info(0)['instances']) == 2  # of 4
    assert ds.check_report['unknown_categories'] == {"'ellipse'": 2}
    assert any("dropped 2 annotation(s) of categories not in classes" in m
               for m in log_records)


# ------------------------------------------------------------------ R21 misspelt keys
def test_misspelt_semi_train_cfg_key_fails_at_model_build(run_train):
    with pytest.raises(SetupError) as err:
        run_train(DEMO_SEMI_CONFIG, 'model.semi_train_cfg.score_threshold=0.5',
                  'allow_untrained_teacher=True', 'model.detector.backbone.pretrained=False',
                  *FAST)
    msg = str(err.value)
    assert "'score_threshold' (did you mean 'score_thr'?)" in msg
    assert 'Valid keys:' in msg and 'sam_refiner' in msg and 'ignore_score_thr' in msg
    assert not list(run_train.work.rglob('*.pth'))


def test_cfg_options_custom_data_fails_saying_to_edit_the_file(run_train):
    with pytest.raises(SetupError) as err:
        run_train(CUSTOM_SEMI, 'custom_data.data_root=data/elsewhere/')
    msg = str(err.value)
    assert 'custom_data.data_root' in msg and 'changes nothing' in msg
    assert 'configs/custom/custom_data.py' in msg
    assert not run_train.work.exists()


# ------------------------------------------------------------------ R22 boxes, empty sets
def test_annotations_without_bbox_get_boxes_from_their_masks(demo_copy):
    full = 'annotations/instances_train.json'
    with open(osp.join(str(demo_copy), full)) as f:
        boxes = {a['id']: a['bbox'] for a in json.load(f)['annotations']}
    _edit_json(demo_copy, full, lambda doc: [a.pop('bbox') for a in doc['annotations']])
    ds = _demo_dataset(DEMO_SUP_CONFIG, demo_copy, ann_file=full)
    assert ds.check_report['repaired_annotations']['bbox rebuilt from mask'] == len(boxes)
    got = [i['bbox'] for k in range(len(ds)) for i in ds.get_data_info(k)['instances']]
    assert len(got) == len(boxes)  # none dropped
    want = sorted(tuple(b) for b in boxes.values())
    rebuilt = sorted((x1, y1, x2 - x1, y2 - y1) for x1, y1, x2, y2 in got)
    assert all(abs(p - q) <= 1 for a, b in zip(want, rebuilt) for p, q in zip(a, b))


@pytest.mark.parametrize('bbox', ['absent', None, []])
def test_polygon_without_bbox_gets_its_box(bbox):
    ann = dict(category_id=1, segmentation=[[2, 2, 20, 2, 20, 20, 2, 20]], area=324)
    if bbox != 'absent':
        ann['bbox'] = bbox
    assert check_annotation(ann, 32, 32, require_mask=True) == (None,
                                                                ['bbox rebuilt from mask'])
    assert ann['bbox'] == [2.0, 2.0, 18.0, 18.0]
    no_mask = dict(category_id=1, area=4)
    assert check_annotation(no_mask, 32, 32, require_mask=False)[0] == 'no bbox and no mask'


@pytest.mark.slow
def test_labelled_set_empty_after_filtering_fails_naming_file_and_reasons(run_train, demo_copy):
    def degenerate(doc):
        for a in doc['annotations']:
            a['segmentation'] = [[1, 1, 5, 5]]  # 2 points

    ann = _edit_json(demo_copy, LABELLED, degenerate)
    with pytest.raises(SetupError) as err:
        run_train(DEMO_SUP_CONFIG, 'model.backbone.pretrained=False', *FAST)
    msg = str(err.value)
    assert (f'labelled set {ann} is empty after filtering (1 images, 4 annotations '
            'dropped: 4 polygon < 3 points)') in msg
    assert not list(run_train.work.rglob('*.pth'))


# ------------------------------------------------------------------ R23 class counts
def test_num_classes_differs_from_classes_fails_before_the_runner(run_train):
    with pytest.raises(SetupError) as err:
        run_train(DEMO_SUP_CONFIG, 'model.roi_head.bbox_head.num_classes=3',
                  'model.roi_head.mask_head.num_classes=3')
    msg = str(err.value)
    assert 'the detector has 3 classes (model.roi_head.bbox_head.num_classes, ' \
           'model.roi_head.mask_head.num_classes)' in msg
    assert "train_dataloader.dataset has 4 (metainfo.classes: ['disc'" in msg
    assert 'IndexError' in msg and 'to 4' in msg
    assert not run_train.work.exists()


def test_heads_disagreeing_on_num_classes_fail():
    cfg = Config.fromfile(osp.join(REPO, DEMO_SEMI_CONFIG))
    cfg.model.detector.roi_head.mask_head.num_classes = 3
    with pytest.raises(SetupError, match=r'model.detector.roi_head.mask_head.num_classes=3 '
                       r'but model.detector.roi_head.bbox_head.num_classes=4'):
        check_class_counts(cfg)


def test_mask2former_class_counts_and_class_weight():
    cfg = Config.fromfile(osp.join(REPO, 'configs/s4m/mask2former_r50_90k_sup-0.1-cityscapes.py'))
    check_class_counts(cfg)  # the shipped config: 8 classes everywhere
    cfg.model.panoptic_head.num_things_classes = 7
    cfg.model.panoptic_fusion_head.num_things_classes = 7
    with pytest.raises(SetupError, match='class_weight has 9 entries'):
        check_class_counts(cfg)
    cfg.model.panoptic_head.loss_cls.class_weight = [1.0] * 7 + [0.1]
    with pytest.raises(SetupError, match=r'the detector has 7 classes .* has 8 '
                       r'\(metainfo.classes'):
        check_class_counts(cfg)


@pytest.mark.slow
def test_every_shipped_config_passes_the_preflight():
    """Every config (stage 2 with the opt-out: none ships a teacher checkpoint) passes;
    stage-2 configs without it ask for the stage-1 checkpoint. ~10 s."""
    configs = sorted(p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                                          recursive=True)
                     if '_base_' not in p and not p.endswith('custom_data.py'))
    for path in configs:
        cfg = Config.fromfile(path)
        if is_stage2(cfg):
            with pytest.raises(SetupError, match='stage-1 checkpoint'):
                check_before_training(cfg)
            cfg.allow_untrained_teacher = True
        check_before_training(cfg)
