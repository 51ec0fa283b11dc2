"""PseudoLabelVisHook and tools/analysis_tools/browse_pseudo_labels.py: pseudo-label panels
(teacher | SAM-refined | student + ARP) written through mmengine's vis backends."""
import copy
import os.path as osp
from types import SimpleNamespace

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope
from mmengine.visualization import Visualizer

from mmssis.engine.hooks import PseudoLabelVisHook
from mmssis.registry import HOOKS, MODELS
from mmssis.testing import (build_echo_sam, echo_box_refiner, make_semi_batch,
                            tiny_mask_rcnn_cfg)
from mmssis.testing.tiny_run import DEMO_SEMI_CONFIG, shrink_for_test
from mmssis.testing.tools import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CLASSES = ('disc', 'square', 'triangle', 'star')
SIZE, GAP = 64, 4  # make_semi_batch image side, hook default gap


def _semi_model(sam=True, mixer=True):
    det = tiny_mask_rcnn_cfg(num_classes=4)
    cfg = ConfigDict(type='SemiMaskDetector', detector=det,
                     data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                                            data_preprocessor=det['data_preprocessor']),
                     semi_train_cfg=dict(score_thr=0.05))
    if mixer:
        cfg.semi_train_cfg.instance_mixer = dict(type='ARPInstanceMixer', min_area=10,
                                                 seed=0)
    with DefaultScope.overwrite_default_scope('mmssis'):
        torch.manual_seed(0)
        model = MODELS.build(cfg)
    if sam:
        object.__setattr__(model, '_sam_refiner', echo_box_refiner(img_size=64, embed_on='view'))
    return model


@pytest.fixture(scope='module')
def model():
    return _semi_model()


def _runner(model, tmp_path, it):
    vis = Visualizer(name=f'vis_{tmp_path.name}', save_dir=str(tmp_path),
                     vis_backends=[dict(type='LocalVisBackend')])
    return SimpleNamespace(model=model, iter=it, visualizer=vis,
                           train_dataloader=SimpleNamespace(
                               dataset=SimpleNamespace(metainfo=dict(classes=CLASSES))))


def _train_step(model):
    """The detector's loss on a batch, as in a training step (it keeps the record when
    asked to)."""
    inputs, samples = make_semi_batch(batch=2, img_shape=(SIZE, SIZE))
    model.loss(inputs, samples)


def _grid_width(panels):
    return panels * (SIZE + GAP) - GAP


@pytest.mark.parametrize('show_student,panels', [(None, 3), (False, 2)])
def test_hook_writes_panels_every_interval(model, tmp_path, show_student, panels):
    hook = HOOKS.build(dict(type='PseudoLabelVisHook', interval=5, num_images=2,
                            show_student=show_student))
    runner = _runner(model, tmp_path, it=3)
    hook.before_train_iter(runner, 3)
    assert not model._keep_record  # iteration 4: not drawn
    runner.iter = 4
    hook.before_train_iter(runner, 4)
    assert model._keep_record
    _train_step(model)
    # A plain attribute, not a module or tensor buffer: never saved, averaged or optimised.
    assert model._record is not None and not any('record' in k for k in model.state_dict())
    np_state = np.random.get_state()[1].copy()
    hook.after_train_iter(runner, 4)
    # Drawing (mmdet jitters mask colours with numpy's global RNG) leaves training's
    # random stream alone.
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert model.pop_record() is None  # taken and forgotten
    png = tmp_path / 'vis_data' / 'vis_image' / 'pseudo_labels_5.png'
    assert png.is_file()
    img = mmcv.imread(str(png))
    # 2 rows (images) x `panels` columns of 64 px views, 4 px gaps.
    assert img.shape == (2 * SIZE + GAP, _grid_width(panels), 3)
    # Panels differ from the raw views: masks / boxes / titles were drawn.
    assert img[:SIZE, :SIZE].std() > 0


def test_two_panels_without_sam(tmp_path):
    model = _semi_model(sam=False, mixer=True)  # teacher | student + ARP
    hook = PseudoLabelVisHook(interval=1, num_images=1)
    runner = _runner(model, tmp_path, it=0)
    hook.before_train_iter(runner, 0)
    _train_step(model)
    hook.after_train_iter(runner, 0)
    img = mmcv.imread(str(tmp_path / 'vis_data' / 'vis_image' / 'pseudo_labels_1.png'))
    assert img.shape == (SIZE, _grid_width(2), 3)


def test_no_record_warns_and_draws_nothing(model, tmp_path):
    hook = PseudoLabelVisHook(interval=1)
    runner = _runner(model, tmp_path, it=0)
    hook.before_train_iter(runner, 0)
    hook.after_train_iter(runner, 0)  # no training step ran: no record
    assert hook._warned and model.pop_record() is None and not model._keep_record
    assert not (tmp_path / 'vis_data' / 'vis_image').exists()


def test_detector_loss_keeps_the_record_only_when_asked():
    model = _semi_model(sam=True, mixer=True)
    inputs, samples = make_semi_batch(batch=2, img_shape=(SIZE, SIZE))
    model.loss(inputs, samples)
    assert model.pop_record() is None
    model.keep_next_record()
    inputs, samples = make_semi_batch(batch=2, img_shape=(SIZE, SIZE))
    model.loss(inputs, samples)
    record = model.pop_record()
    assert len(record.candidates) == len(record.kept) == len(record.refined) == 2
    # The refined instances are SAM's output (refine_batch adds SAM's predicted IoU); the
    # kept ones are the filtered ones from before SAM. (An untrained teacher's soft masks
    # fill their boxes, so the box-drawing fake SAM may return identical pixels.)
    for c, t, r in zip(record.candidates, record.kept, record.refined):
        assert 'sam_iou' not in t and len(t) <= len(c)
        assert len(r) == 0 or 'sam_iou' in r
    # the student side: what the student was trained on, in the student view
    assert record.student_inputs.shape == inputs['unsup_student'].shape
    for sample in record.student_samples:
        h, w = sample.metainfo['img_shape'][:2]
        masks = sample.gt_instances.masks
        assert (masks.height, masks.width) == (h, w)
        assert len(sample.gt_instances.bboxes) == len(masks)
    assert 'arp_pairs' in record.stats and model.pop_record() is None


# ----------------------------------------------------------------------------------------
# the tiny demo data: fixed-set mode and the offline browse tool
def _tiny_semi_cfg(tiny_demo, work_dir):
    cfg = Config.fromfile(osp.join(REPO, DEMO_SEMI_CONFIG))
    shrink_for_test(cfg, tiny_demo.root, str(work_dir))
    cfg.model.detector = ConfigDict(tiny_mask_rcnn_cfg(num_classes=4))
    cfg.model.semi_train_cfg.score_thr = 0.05
    cfg.model.semi_train_cfg.instance_mixer = dict(type='ARPInstanceMixer', min_area=20,
                                                   seed=0)
    return cfg


def _browse_tool():
    return load_tool('analysis_tools/browse_pseudo_labels.py')


def test_fixed_set_mode_draws_dataset_images(tiny_demo, tmp_path):
    cfg = _tiny_semi_cfg(tiny_demo, tmp_path)
    model = _semi_model(sam=False, mixer=True)
    hook = PseudoLabelVisHook(interval=2, num_images=2,
                              dataset=cfg.train_dataloader.dataset.datasets[1])
    runner = _runner(model, tmp_path, it=1)
    hook.before_train_iter(runner, 1)
    assert not model._keep_record  # fixed mode never keeps training records
    with DefaultScope.overwrite_default_scope('mmssis'):
        hook.after_train_iter(runner, 1)
    img = mmcv.imread(str(tmp_path / 'vis_data' / 'vis_image' / 'pseudo_labels_2.png'))
    # 2 rows x 2 panels (teacher | student + ARP) of square views of 205-320 px (the
    # 128 px demo images resized to 256 * [0.8, 1.25]); cells are padded to the largest.
    side = (img.shape[1] - GAP) // 2
    assert 205 <= side <= 320 and img.shape == (2 * side + GAP, 2 * side + GAP, 3)


def test_browse_tool_cli_writes_panels(tiny_demo, tmp_path, capsys):
    cfg = _tiny_semi_cfg(tiny_demo, tmp_path / 'work')
    cfg_path = str(tmp_path / 'semi.py')
    cfg.dump(cfg_path)
    # A stage-1 (plain detector) checkpoint: it fills the teacher.
    with DefaultScope.overwrite_default_scope('mmssis'):
        torch.manual_seed(1)
        plain = MODELS.build(ConfigDict(tiny_mask_rcnn_cfg(num_classes=4)))
    ckpt = str(tmp_path / 'stage1.pth')
    torch.save(dict(state_dict=plain.state_dict(), meta={}), ckpt)
    written = _browse_tool().main([cfg_path, ckpt, '--out-dir', str(tmp_path / 'out'),
                                   '--num', '2'])
    assert len(written) == 2 and all(osp.isfile(p) for p in written)
    assert osp.basename(written[0]) == '00000_000000.png'
    for path in written:
        img = mmcv.imread(path)
        # One row: teacher | student + ARP, square views of 205-320 px.
        side = img.shape[0]
        assert 205 <= side <= 320 and img.shape[1] == 2 * side + GAP
    assert 'wrote 2 panels' in capsys.readouterr().out


def test_browse_tool_with_sam_has_three_panels(tiny_demo, tmp_path):
    tool = _browse_tool()
    cfg = _tiny_semi_cfg(tiny_demo, tmp_path / 'work')
    cfg.model.semi_train_cfg.sam_refiner = dict(
        type='SamMaskRefiner', embed_on='original', num_points=0, use_box=True,
        multimask=False, backend=dict(type='SamModelBackend', sam=build_echo_sam(img_size=128)))
    model = tool.build_semi_model(cfg, None, use_sam=True)
    assert model.sam_refiner is not None
    dataset = tool.build_unlabelled_dataset(cfg)
    written = tool.browse(model, dataset, str(tmp_path / 'out'), num=2, batch_size=2)
    assert len(written) == 2
    for path in written:
        img = mmcv.imread(path)
        assert 205 <= img.shape[0] <= 320 and img.shape[1] == 3 * img.shape[0] + 2 * GAP
    without = tool.build_semi_model(cfg, None, use_sam=False)
    assert without.sam_refiner is None


def test_browse_tool_restores_the_runs_sam_decisions(tiny_demo, tmp_path, capsys):
    """policy='measured': the checkpoint's SamBenefitHook decisions; a checkpoint without
    them (a stage-1 teacher) refines every pseudo-mask and says so."""
    tool = _browse_tool()
    cfg = _tiny_semi_cfg(tiny_demo, tmp_path / 'work')
    cfg.model.semi_train_cfg.sam_refiner = dict(
        type='SamMaskRefiner', embed_on='original', policy='measured', num_points=0,
        use_box=True, multimask=False,
        backend=dict(type='SamModelBackend', sam=build_echo_sam(img_size=128)))
    with DefaultScope.overwrite_default_scope('mmssis'):
        semi = MODELS.build(copy.deepcopy(cfg.model))
    run_ckpt, teacher_ckpt = str(tmp_path / 'run.pth'), str(tmp_path / 'stage1.pth')
    torch.save(dict(state_dict=semi.state_dict(),
                    meta=dict(sam_benefit=dict(iter=300, enabled=[True, False, False, True]))),
               run_ckpt)
    torch.save(dict(state_dict=semi.teacher.state_dict(), meta={}), teacher_ckpt)
    model = tool.build_semi_model(cfg, run_ckpt, use_sam=True)
    assert model.sam_refiner.policy == 'measured'
    assert model.sam_refiner.class_enabled == [True, False, False, True]
    model = tool.build_semi_model(cfg, teacher_ckpt, use_sam=True)
    assert model.sam_refiner.policy == 'always'
    assert 'holds no SAM decisions' in capsys.readouterr().out
    other_ckpt = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=semi.state_dict(),
                    meta=dict(sam_benefit=dict(iter=300, enabled=[True, False]))), other_ckpt)
    with pytest.raises(ValueError, match='cover 2 classes, the model has 4'):
        tool.build_semi_model(cfg, other_ckpt, use_sam=True)


def test_browse_tool_draws_the_same_panels_whatever_the_global_rng(tiny_demo, tmp_path):
    """The pipeline's random views come from the tool's seed, not from whatever state the
    process's generators are in (the demo's panel was different on every run before)."""
    import numpy as np
    tool = _browse_tool()
    cfg = _tiny_semi_cfg(tiny_demo, tmp_path / 'work')
    model = tool.build_semi_model(cfg, None, use_sam=False)
    dataset = tool.build_unlabelled_dataset(cfg)
    panels = []
    for k, disturb in enumerate((1, 2)):
        np.random.seed(disturb)
        torch.manual_seed(disturb)
        tool.browse(model, dataset, str(tmp_path / f'out{k}'), num=2, batch_size=2,
                    panel=str(tmp_path / f'panel{k}.png'))
        panels.append(mmcv.imread(str(tmp_path / f'panel{k}.png')))
    assert panels[0].shape == panels[1].shape
    assert np.array_equal(panels[0], panels[1])
