"""ConfidenceCalibrationHook on a tiny real setup: demo images, test pipeline, Mask R-CNN."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.structures import InstanceData

import mmssis.engine.hooks.calibration_hook as calib_mod
import mmssis.engine.hooks.calibration_slice as slice_mod
import mmssis.models.detectors.semi_mask_detector as semi_mod
from mmssis.evaluation import evaluate_pseudo_labels
from mmssis.engine.hooks import ConfidenceCalibrationHook
from mmssis.engine.hooks.teacher_schedule_hook import MESSAGE_HUB_INFO_KEY as SCHEDULE_KEY
from mmssis.registry import HOOKS, MODELS
from mmssis.testing import tiny_mask_rcnn_cfg
from mmssis.testing.tiny_run import hook_runner, shrink_for_test
from mmssis.utils import adapt_cfg_to_machine

CLASSES = ('disc', 'square', 'triangle', 'star')
META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')


def _pipeline(annotations_first: bool) -> list:
    """Test pipeline resizing the 128-px demo images to 256 px.

    Loading annotations after ``Resize`` (mmdet/demo style) leaves GT masks at
    ``ori_shape`` (128); loading them before puts them at ``img_shape`` (256).
    """
    load = dict(type='LoadAnnotations', with_bbox=True, with_mask=True)
    resize = dict(type='Resize', scale=(256, 256), keep_ratio=True)
    middle = [load, resize] if annotations_first else [resize, load]
    return [dict(type='LoadImageFromFile'), *middle,
            dict(type='PackDetInputs', meta_keys=META_KEYS)]


def _loader_cfg(demo, annotations_first: bool = False) -> dict:
    return dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='CheckedCocoDataset', data_root=demo.root, ann_file=demo.val_ann,
                     data_prefix=dict(img='images/'), test_mode=True,
                     metainfo=dict(classes=CLASSES),
                     pipeline=_pipeline(annotations_first)))


def _build_model():
    det = tiny_mask_rcnn_cfg(num_classes=len(CLASSES))
    cfg = dict(type='SemiMaskDetector', detector=det,
               data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                                      data_preprocessor=det['data_preprocessor']))
    torch.manual_seed(0)
    return MODELS.build(ConfigDict(cfg))


@pytest.fixture(autouse=True)
def _mmssis_scope():
    with DefaultScope.overwrite_default_scope('mmssis'):
        yield


@pytest.fixture(scope='module')
def model():
    with DefaultScope.overwrite_default_scope('mmssis'):
        return _build_model()


def _runner(model, tmp_path, it: int = 0):
    return hook_runner(model, str(tmp_path / 'work'), it, vis_dir=str(tmp_path / 'vis'))


def _oracle(false_label_shift: int = 1):
    """A teacher that returns every GT mask (score 0.9) plus a wrong-class copy (0.4).

    Predictions are produced the way real ones are: mask logits in the ``img_shape``
    frame, whatever frame the GT was loaded in.
    """

    def fake_pseudo_instances(teacher, inputs, samples):
        out = []
        for sample in samples:
            gt = sample.gt_instances
            h, w = sample.metainfo['img_shape'][:2]
            masks = torch.as_tensor(gt.masks.resize((h, w)).to_ndarray()).bool()
            logits = torch.where(masks, 5.0, -5.0)
            n = len(gt)
            labels = torch.cat([gt.labels, (gt.labels + false_label_shift) % len(CLASSES)])
            out.append(InstanceData(
                bboxes=torch.zeros(2 * n, 4), labels=labels,
                scores=torch.cat([torch.full((n, ), 0.9), torch.full((n, ), 0.4)]),
                mask_logits=torch.cat([logits, logits])))
        return out

    return fake_pseudo_instances


@pytest.mark.parametrize('annotations_first', [False, True])
def test_records_compare_in_the_gt_frame(tiny_demo, model, monkeypatch, annotations_first):
    """GT loaded after Resize (ori_shape) or before (img_shape): the oracle is right."""
    monkeypatch.setattr(semi_mod, 'teacher_pseudo_instances', _oracle())
    loader = Runner.build_dataloader(_loader_cfg(tiny_demo, annotations_first))
    data = next(iter(loader))
    sample = data['data_samples'][0]
    gt_hw = (sample.gt_instances.masks.height, sample.gt_instances.masks.width)
    expected_hw = sample.metainfo['img_shape'] if annotations_first else sample.metainfo[
        'ori_shape']
    assert gt_hw == tuple(expected_hw[:2]) and gt_hw != tuple(
        sample.metainfo['ori_shape' if annotations_first else 'img_shape'][:2])
    rec = calib_mod.calibration_records(model, data, iou_thr=0.5)
    n_gt = sum(len(s.gt_instances) for s in data['data_samples'])
    assert len(rec['scores']) == 2 * n_gt > 0
    np.testing.assert_array_equal(rec['correct'], rec['scores'] > 0.5)


@pytest.mark.parametrize('annotations_first', [False, True])
def test_calibration_and_quality_compare_in_the_same_frame(tiny_demo, model, monkeypatch,
                                                           annotations_first):
    """The calibration records and the pseudo-label quality metric judge the same
    candidates the same way (one frame rule, one matching rule): the kept (score > 0.7)
    candidates the calibration flags correct are the quality metric's true positives."""
    monkeypatch.setattr(semi_mod, 'teacher_pseudo_instances', _oracle(false_label_shift=0))
    loader = Runner.build_dataloader(_loader_cfg(tiny_demo, annotations_first))
    rec = {k: [] for k in ('scores', 'correct')}
    for data in loader:
        part = calib_mod.calibration_records(model, data, iou_thr=0.5)
        for k in rec:
            rec[k].append(part[k])
    scores, correct = np.concatenate(rec['scores']), np.concatenate(rec['correct'])
    quality = evaluate_pseudo_labels(model, loader, refiner=None)
    kept = scores > 0.7
    assert quality['teacher_num_pred'] == kept.sum() > 0
    assert quality['teacher_num_tp'] == correct[kept].sum() == kept.sum()
    # the same-class duplicates (0.4) are false positives for both
    assert not correct[~kept].any()


def test_oracle_calibration_sets_thresholds(tiny_demo, model, monkeypatch, tmp_path):
    """Right at 0.9, wrong at 0.4: thresholds follow from the per-class counts."""
    monkeypatch.setattr(semi_mod, 'teacher_pseudo_instances', _oracle())
    model.class_score_thr = None
    runner = _runner(model, tmp_path)
    _teacher_updated(runner, -1)  # TeacherScheduleHook: frozen stage-1 teacher
    hook = ConfidenceCalibrationHook(dataloader=_loader_cfg(tiny_demo), max_images=4,
                                     target_precision=0.8, min_support=1, default_thr=0.77,
                                     calibrate_at_start=True, interval=5)
    hook.before_train(runner)  # the 4 val images: the whole val split
    thr = model.class_score_thr
    assert thr.shape == (len(CLASSES), ) and thr.dtype == torch.float32
    counts = np.bincount(_labels_in_val(tiny_demo), minlength=len(CLASSES))
    for cls in range(len(CLASSES)):
        right, wrong = counts[cls], counts[cls - 1]  # wrong copies come from class - 1
        if right == 0:  # only wrong detections: target unreachable (or nothing at all)
            expected = 0.95 if wrong else 0.77
        elif right / (right + wrong) >= 0.8:  # good enough from min_thr on
            expected = 0.3
        else:  # cut halfway between the wrong 0.4 and the right 0.9
            expected = 0.65
        assert thr[cls].item() == pytest.approx(expected), (cls, right, wrong)
    assert runner.message_hub.get_info('calibration')['thresholds'] == pytest.approx(
        thr.tolist())
    # Half the detections are 0.9 & right, half 0.4 & wrong: ECE = (0.1 + 0.4) / 2.
    assert hook.last_iter == 0 and hook.ece == pytest.approx(0.25)
    # Only at the interval: step 4 -> nothing, step 5 -> calibrate, but not while the
    # teacher is the one calibrated at step 0 (frozen before burn-in).
    runner.iter = 3
    hook.after_train_iter(runner, 0)
    assert hook.last_iter == 0
    runner.iter = 4
    hook.after_train_iter(runner, 0)
    assert hook.last_iter == 0  # same teacher: thresholds kept
    _teacher_updated(runner, 8)  # burn-in copy / EMA update after step 8
    runner.iter = 9
    hook.after_train_iter(runner, 0)
    assert hook.last_iter == 10
    runner.iter = 14
    hook.after_train_iter(runner, 0)
    assert hook.last_iter == 10  # no update since step 8: thresholds kept


def _teacher_updated(runner, step: int) -> None:
    """Publish what ``TeacherScheduleHook`` publishes: the teacher last changed at ``step``
    (``-1``: never)."""
    runner.message_hub.update_info(SCHEDULE_KEY, dict(
        burned_in=step >= 0, last_update_iter=step, num_ema_updates=0, burn_in_iters=0))


def _labels_in_val(demo) -> np.ndarray:
    with open(demo.val_ann) as f:
        ann = json.load(f)
    ids = [c['id'] for c in ann['categories']]
    return np.array([ids.index(a['category_id']) for a in ann['annotations']])


def test_distributed_results_are_gathered(tiny_demo, model, monkeypatch, tmp_path):
    """Every rank calibrates on its share and uses all ranks' detections."""
    monkeypatch.setattr(semi_mod, 'teacher_pseudo_instances', _oracle())
    monkeypatch.setattr(slice_mod, 'get_world_size', lambda: 2)
    monkeypatch.setattr(calib_mod, 'all_gather_object', lambda obj: [obj, obj])
    runner = _runner(model, tmp_path)
    hook = ConfidenceCalibrationHook(dataloader=_loader_cfg(tiny_demo), max_images=4,
                                     calibrate_at_start=False)
    hook.before_train(runner)
    loader = Runner.build_dataloader(_loader_cfg(tiny_demo))
    first_two = next(iter(loader))  # this "rank" sees ceil(4 / 2) = 2 images
    n_gt = sum(len(s.gt_instances) for s in first_two['data_samples'])
    state = hook.calibrate(runner, 7)
    assert state['num_detections'] == 2 * (2 * n_gt)


def test_real_teacher_run_writes_plot_and_logs(tiny_demo, model, tmp_path):
    """Untrained tiny Mask R-CNN teacher, val_dataloader reused (dataloader=None)."""
    model.class_score_thr = None
    runner = _runner(model, tmp_path, it=0)
    runner.val_dataloader = Runner.build_dataloader(_loader_cfg(tiny_demo))
    hook = HOOKS.build(dict(type='ConfidenceCalibrationHook', max_images=2, interval=3,
                            min_thr=0.3, max_thr=0.95))
    model.train()
    hook.before_train(runner)
    assert model.teacher.training and model.training  # mode restored
    png = osp.join(runner.work_dir, 'calibration', 'reliability_iter_0.png')
    assert osp.isfile(png)
    vis_png = osp.join(str(tmp_path / 'vis'), 'vis_data', 'vis_image',
                       'calibration_reliability_0.png')
    assert osp.isfile(vis_png)
    thr = model.class_score_thr
    assert thr.shape == (len(CLASSES), )
    assert bool(((thr >= 0.3) & (thr <= 0.95)).all())
    hub = runner.message_hub
    assert hub.get_scalar('calibration/thr_square').current() == pytest.approx(thr[1].item())
    assert hub.get_scalar('calibration/num_detections').current() > 0
    runner.iter = 2  # step 3 == interval; no TeacherScheduleHook: every interval measures
    hook.after_train_iter(runner, 0)
    assert osp.isfile(osp.join(runner.work_dir, 'calibration', 'reliability_iter_3.png'))


class _TinySemi(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.teacher = torch.nn.Linear(1, 1)
        self.class_score_thr = None


def test_state_round_trips_through_checkpoint(tmp_path):
    runner = _runner(_TinySemi(), tmp_path, it=100)
    hook = ConfidenceCalibrationHook(calibrate_at_start=False)
    hook.load_state_dict(dict(thresholds=[0.4, 0.55, 0.95], ece=0.12,
                              class_ece=[0.1, float('nan'), 0.2], iter=100,
                              num_detections=321))
    ckpt = {'meta': {'iter': 100}}
    hook.before_save_checkpoint(runner, ckpt)
    path = str(tmp_path / 'ckpt.pth')
    torch.save(ckpt, path)
    ckpt = torch.load(path, weights_only=True)  # plain Python only

    # Resume: restored before the first iteration, no recalibration (the loader is never
    # touched: an empty one would have replaced the thresholds by defaults).
    resumed = _runner(_TinySemi(), tmp_path, it=100)
    new_hook = ConfidenceCalibrationHook(dataloader=[], calibrate_at_start=True)
    new_hook.after_load_checkpoint(resumed, ckpt)
    new_hook.before_train(resumed)
    assert resumed.model.class_score_thr.tolist() == pytest.approx([0.4, 0.55, 0.95])
    assert new_hook.last_iter == 100 and new_hook.num_detections == 321
    assert new_hook.ece == pytest.approx(0.12)

    # load_from (iteration 0) starts fresh.
    fresh = _runner(_TinySemi(), tmp_path, it=0)
    fresh_hook = ConfidenceCalibrationHook(calibrate_at_start=False)
    fresh_hook.after_load_checkpoint(fresh, ckpt)
    fresh_hook.before_train(fresh)
    assert fresh.model.class_score_thr is None and fresh_hook.thresholds is None


CALIB_CONFIG = 'configs/demo/gd-calib_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'


def _calib_run_cfg(demo, work_dir, max_iters: int):
    repo = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    cfg = Config.fromfile(osp.join(repo, CALIB_CONFIG))
    shrink_for_test(cfg, demo.root, str(work_dir), max_iters=max_iters, ckpt_interval=1)
    # Speed: the tiny Mask R-CNN of the unit tests instead of the demo-sized one, and no
    # validation at the last iteration.
    det = tiny_mask_rcnn_cfg(num_classes=len(CLASSES))
    cfg.model.detector = det
    cfg.model.data_preprocessor.data_preprocessor = det['data_preprocessor']
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.calibration_dataloader.dataset.data_root = demo.root
    hook = next(h for h in cfg.custom_hooks if h.type == 'ConfidenceCalibrationHook')
    hook.update(interval=1, max_images=2)
    # the teacher changes at step 1 (hard copy at burn-in), so step 1 re-calibrates
    next(h for h in cfg.custom_hooks if h.type == 'TeacherScheduleHook').burn_in_iters = 1
    return adapt_cfg_to_machine(cfg)


@pytest.mark.slow
def test_demo_calib_config_in_runner(tiny_demo, tmp_path):
    """The -calib demo config in mmengine's Runner: calibrates at 0 and 1 (not after the
    last step, 2), saves state."""
    work = tmp_path / 'run'
    runner = Runner.from_cfg(_calib_run_cfg(tiny_demo, work, max_iters=2))
    runner.train()
    for step in (0, 1):
        assert (work / 'calibration' / f'reliability_iter_{step}.png').is_file()
    assert not (work / 'calibration' / 'reliability_iter_2.png').exists()
    thr = runner.model.class_score_thr
    assert thr is not None and thr.shape == (len(CLASSES), )
    state = torch.load(work / 'iter_2.pth', weights_only=True)['meta']['calibration']
    assert state['iter'] == 1 and state['thresholds'] == pytest.approx(thr.tolist())


def test_no_measurement_after_the_last_step(tmp_path):
    """The step after the last one never comes: the hooks do not measure for it."""
    from mmssis.engine.hooks import ConfidenceCalibrationHook
    hook = ConfidenceCalibrationHook(dataloader=dict(), interval=5, calibrate_at_start=False)
    calls = []
    hook._measure_and_remember = lambda runner, step: calls.append(step)
    runner = hook_runner(None, str(tmp_path), it=4, max_iters=10)
    hook.after_train_iter(runner, 0)  # step 5 of 10: measured
    runner.iter = 9
    hook.after_train_iter(runner, 0)  # step 10 of 10: the run ends here
    assert calls == [5]
