"""Pseudo-label quality: matching metrics on hand-made masks, frames, and the hook."""
import copy
import os.path as osp
from unittest.mock import MagicMock

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.structures import InstanceData

import mmssis.models.detectors.semi_mask_detector as semi_mask_detector
from mmssis.evaluation import evaluate_pseudo_labels
from mmssis.engine.hooks import PseudoLabelQualityHook
from mmssis.evaluation import PseudoLabelQuality
from mmssis.registry import HOOKS, MODELS
from mmssis.testing import echo_box_refiner, gt_teacher_pseudo_instances, tiny_mask_rcnn_cfg
from mmssis.testing.tiny_run import DEMO_SUP_CONFIG
from mmssis.testing.tools import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _box(x1, y1, x2, y2, size=(20, 20)):
    m = torch.zeros(size, dtype=torch.bool)
    m[y1:y2, x1:x2] = True
    return m


def _inst(masks, labels, scores=None):
    inst = InstanceData(masks=torch.stack(masks) if masks else torch.zeros((0, 20, 20),
                                                                          dtype=torch.bool),
                        labels=torch.as_tensor(labels, dtype=torch.long))
    if scores is not None:
        inst.scores = torch.as_tensor(scores, dtype=torch.float32)
    return inst


GT = _inst([_box(0, 0, 10, 10), _box(10, 10, 20, 20)], [0, 1])


def _metrics(pred, gt=GT, **kw):
    acc = PseudoLabelQuality(**kw)
    acc.update(pred, gt)
    return acc.compute()


def test_perfect_prediction():
    m = _metrics(_inst([_box(10, 10, 20, 20), _box(0, 0, 10, 10)], [1, 0], [0.9, 0.8]))
    assert m['precision'] == m['recall'] == m['miou'] == m['best_iou'] == 1.0
    assert m['num_tp'] == 2


def test_missed_instance_lowers_recall():
    m = _metrics(_inst([_box(0, 0, 10, 10)], [0], [0.9]))
    assert m['precision'] == 1.0 and m['recall'] == 0.5 and m['miou'] == 1.0


def test_false_positive_lowers_precision():
    pred = _inst([_box(0, 0, 10, 10), _box(10, 10, 20, 20), _box(0, 12, 6, 20)], [0, 1, 1],
                 [0.9, 0.8, 0.7])
    m = _metrics(pred)
    assert m['precision'] == pytest.approx(2 / 3) and m['recall'] == 1.0
    assert m['miou'] == 1.0 and m['best_iou'] == pytest.approx(2 / 3)  # FP best IoU is 0


def test_sloppy_mask_lowers_miou_and_below_thr_is_a_miss():
    # 10x8 inside the 10x10 GT: IoU 0.8 (match); 10x4: IoU 0.4 (no match at 0.5).
    m = _metrics(_inst([_box(0, 0, 10, 8), _box(10, 10, 20, 14)], [0, 1], [0.9, 0.8]))
    assert m['miou'] == pytest.approx(0.8) and m['recall'] == 0.5 and m['precision'] == 0.5
    assert m['best_iou'] == pytest.approx((0.8 + 0.4) / 2)


def test_class_aware_matching():
    pred = _inst([_box(0, 0, 10, 10)], [1], [0.9])  # right mask, wrong class
    assert _metrics(pred)['num_tp'] == 0
    assert _metrics(pred, class_aware=False)['num_tp'] == 1


def test_empty_conventions():
    empty = _inst([], [])
    assert _metrics(empty, empty)['precision'] == 1.0
    m = _metrics(empty)
    assert m['precision'] == 0.0 and m['recall'] == 0.0 and m['miou'] == 0.0
    assert _metrics(_inst([_box(0, 0, 5, 5)], [0], [1.0]), empty)['recall'] == 1.0


# ----------------------------------------------------------------------------------------
# the detector path and the hook on the tiny demo val set
def _semi_model(score_thr=0.05, mask_thr=0.5):
    det = tiny_mask_rcnn_cfg(num_classes=4)
    cfg = ConfigDict(type='SemiMaskDetector', detector=det,
                     data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                                            data_preprocessor=det['data_preprocessor']),
                     semi_train_cfg=dict(score_thr=score_thr, mask_thr=mask_thr))
    with DefaultScope.overwrite_default_scope('mmssis'):
        return MODELS.build(cfg)


def _val_loader(tiny_demo, batch_size=2):
    cfg = Config.fromfile(osp.join(REPO, DEMO_SUP_CONFIG))
    loader = copy.deepcopy(cfg.val_dataloader)
    loader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    loader.dataset.data_root = tiny_demo.root + '/'
    with DefaultScope.overwrite_default_scope('mmssis'):
        return Runner.build_dataloader(loader)


def test_gt_teacher_scores_perfectly_and_refiner_is_scored(tiny_demo, monkeypatch):
    """A 'teacher' that returns the GT (at the resized view) scores 1.0 everywhere, which
    checks the view -> original frame mapping; the box-drawing echo SAM then degrades the
    masks of non-rectangular shapes."""

    monkeypatch.setattr(semi_mask_detector, 'teacher_pseudo_instances',
                        gt_teacher_pseudo_instances)
    model = _semi_model()
    loader = _val_loader(tiny_demo)
    metrics = evaluate_pseudo_labels(model, loader, refiner=echo_box_refiner())
    assert metrics['teacher_num_images'] == 4
    assert metrics['teacher_num_gt'] > 0
    for key in ('precision', 'recall', 'miou', 'best_iou'):
        assert metrics[f'teacher_{key}'] == pytest.approx(1.0)
    assert 0.3 < metrics['refined_best_iou'] < 0.99
    assert metrics['miou_gain'] < 0
    # ARP on the GT teacher's pseudo-labels: pasted copies become new GT objects, scored
    # perfectly because the GT moves with them
    from mmssis.models.augments import ARPInstanceMixer
    mixed = evaluate_pseudo_labels(model, loader, refiner=None,
                                   mixer=ARPInstanceMixer(num_pairs=1, min_area=50, seed=0))
    for key in ('precision', 'recall', 'miou'):
        assert mixed[f'mixed_{key}'] == pytest.approx(1.0)
    assert mixed['mixed_num_gt'] > mixed['teacher_num_gt']
    assert 'refined_miou' not in mixed
    # max_images limits the slice
    assert evaluate_pseudo_labels(model, loader, max_images=1,
                                  refiner=None)['teacher_num_images'] == 1


def test_hook_logs_keys_with_a_real_teacher(tiny_demo):
    # An untrained teacher: scores ~0.23, mask probabilities just below 0.5.
    model = _semi_model(score_thr=0.05, mask_thr=0.2)
    object.__setattr__(model, '_sam_refiner', echo_box_refiner())
    runner = MagicMock()
    runner.model = model
    runner.val_loop.dataloader = _val_loader(tiny_demo)
    runner.message_hub = MessageHub.get_instance('test_pseudo_quality_hook')
    runner.logger = MMLogger.get_instance('test_pseudo_quality_hook')
    with DefaultScope.overwrite_default_scope('mmssis'):
        hook = HOOKS.build(dict(type='PseudoLabelQualityHook', max_images=2))
    assert isinstance(hook, PseudoLabelQualityHook)
    metrics = {'coco/segm_mAP': 0.0}
    model.train()
    hook.after_val_epoch(runner, metrics)
    assert model.training  # mode restored
    for key in ('pseudo/teacher_precision', 'pseudo/teacher_recall', 'pseudo/teacher_miou',
                'pseudo/refined_miou', 'pseudo/refined_precision', 'pseudo/miou_gain'):
        assert key in metrics
        assert runner.message_hub.get_scalar(f'val/{key}').current() == metrics[key]
    assert metrics['pseudo/teacher_num_images'] == 2
    assert metrics['pseudo/teacher_num_pred'] > 0 and metrics['pseudo/refined_num_pred'] > 0
    assert 0.0 <= metrics['pseudo/teacher_precision'] <= 1.0
    # interval=2: only every second validation epoch evaluates
    hook2 = PseudoLabelQualityHook(max_images=1, interval=2)
    m1, m2 = {}, {}
    hook2.after_val_epoch(runner, m1)
    hook2.after_val_epoch(runner, m2)
    assert not m1 and 'pseudo/teacher_miou' in m2


def test_analysis_tool_wraps_a_plain_checkpoint(tiny_demo, tmp_path):
    """tools/analysis_tools/pseudo_label_quality.py on a stage-1 (plain) checkpoint."""
    import json

    from mmssis.testing.tiny_run import DEMO_SUP_CONFIG
    tool = load_tool('analysis_tools/pseudo_label_quality.py')
    cfg = Config.fromfile(osp.join(REPO, DEMO_SUP_CONFIG))
    cfg.model.backbone.pretrained = False
    cfg_file = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_file)
    with DefaultScope.overwrite_default_scope('mmssis'):
        plain = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'stage1.pth')
    torch.save(dict(state_dict=plain.state_dict(), meta={}), ckpt)
    out = str(tmp_path / 'quality.json')
    metrics = tool.main([cfg_file, ckpt, '--ann-file', tiny_demo.val_ann, '--sam', 'none',
                         '--max-images', '2', '--score-thr', '0.05', '--out', out])
    assert metrics['teacher_num_images'] == 2 and 'refined_miou' not in metrics
    assert json.load(open(out))['metrics'] == metrics
    # the checkpoint went into the wrapper's teacher
    model, _ = tool.build_semi_model(Config.fromfile(cfg_file))
    from mmengine.runner import load_checkpoint
    load_checkpoint(model, ckpt, map_location='cpu')
    for key, value in plain.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[key], value)


def test_analysis_tool_rejects_refiner_flags_with_sam_config(capsys):
    """--sam config uses the config's refiner: refiner flags must not be silently dropped."""
    tool = load_tool('analysis_tools/pseudo_label_quality.py')
    with pytest.raises(SystemExit) as err:
        tool.parse_args(['c.py', 'k.pth', '--sam', 'config', '--fusion', 'mean_prob'])
    assert err.value.code == 2
    assert '--fusion cannot be combined with --sam config' in capsys.readouterr().err
    # flags at their defaults, and the same flags with a built-in SAM, are fine
    assert tool.parse_args(['c.py', 'k.pth', '--sam', 'config', '--fusion', 'replace']).sam \
        == 'config'
    assert tool.parse_args(['c.py', 'k.pth', '--fusion', 'mean_prob']).fusion == 'mean_prob'


def _mixer(**kw):
    from mmssis.models.augments import ARPInstanceMixer
    return ARPInstanceMixer(**dict(dict(num_pairs=1, min_area=4, seed=0), **kw))


def _disc(cx, cy, r, size=(20, 20)):
    yy, xx = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing='ij')
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_mix_with_gt_moves_ground_truth_with_the_pasted_pixels():
    """Pseudo-labels equal to the GT stay equal to the GT after mixing: the id maps move
    exactly as the mixer moves pixels and masks."""
    import numpy as np

    from mmssis.evaluation.pseudo_label_eval import mix_with_gt
    gts = [_inst([_box(2, 2, 9, 9), _box(12, 12, 18, 18)], [0, 1]),
           _inst([_disc(10, 10, 5)], [2])]
    preds = [_inst(list(g.masks), g.labels.tolist(), [0.9] * len(g)) for g in gts]
    out = mix_with_gt(_mixer(), preds, gts, np.random.default_rng(0))
    assert len(out) == 2
    for pred, gt in out:
        assert torch.equal(pred.masks.sum(0) > 0, gt.masks.sum(0) > 0)
        metrics = _metrics(pred, gt)
        for key in ('precision', 'recall', 'miou'):
            assert metrics[key] == pytest.approx(1.0)
    # image 0 received the disc (label 2) and image 1 the two boxes
    assert 2 in out[0][1].labels.tolist() and len(out[0][1]) >= 2
    assert {0, 1} <= set(out[1][1].labels.tolist())


def test_mix_with_gt_pastes_only_the_object_under_a_sloppy_pseudo_mask():
    """A box pseudo-mask around a disc pastes the disc plus background: in the mixed image
    the pasted object is the disc's part only, so the pasted pseudo-mask scores its
    precision-like IoU |disc| / |box|, while the image without pasting scores as before."""
    import numpy as np

    from mmssis.evaluation.pseudo_label_eval import mix_with_gt
    disc = _disc(10, 10, 4)
    gts = [_inst([disc], [0]), _inst([], [])]
    preds = [_inst([_box(5, 5, 16, 16)], [0], [0.9]), _inst([], [], [])]
    # static placement: the box lands where it was, on the empty image 1
    (p0, g0), (p1, g1) = mix_with_gt(_mixer(placement='static'), preds, gts,
                                     np.random.default_rng(0))
    assert torch.equal(p0.masks, preds[0].masks) and torch.equal(g0.masks, gts[0].masks)
    assert p1.masks.shape[0] == 1 and g1.masks.shape[0] == 1
    assert torch.equal(g1.masks[0], disc) and torch.equal(p1.masks[0], _box(5, 5, 16, 16))
    iou = _metrics(p1, g1, iou_thr=0.1)['miou']
    assert iou == pytest.approx(disc.sum().item() / 121)


def test_mix_with_gt_leaves_a_single_image_batch_unmixed():
    """An odd last batch of one image cannot be paired: it comes back as it went in
    (the mixer itself refuses such a batch, as training must)."""
    import numpy as np

    from mmssis.evaluation.pseudo_label_eval import mix_with_gt
    from mmssis.models.augments.instance_mixer import ARPLayoutError
    gts = [_inst([_box(2, 2, 9, 9)], [0])]
    preds = [_inst([_box(2, 2, 8, 8)], [0], [0.9])]
    with pytest.raises(ARPLayoutError):
        _mixer()(torch.zeros(1, 1, 20, 20), [], rng=np.random.default_rng(0))
    ((pred, gt),) = mix_with_gt(_mixer(), preds, gts, np.random.default_rng(0))
    assert pred is preds[0] and gt is gts[0]


def test_mix_with_gt_gives_overlapping_gt_pixels_to_the_later_object():
    """The id map holds one object per pixel: the documented rule for overlapping GT."""
    import numpy as np

    from mmssis.evaluation.pseudo_label_eval import mix_with_gt
    a, b = _box(2, 2, 12, 12), _box(8, 8, 18, 18)
    gts = [_inst([a, b], [0, 1]), _inst([], [])]
    preds = [_inst([], [], []), _inst([], [], [])]
    (_, g0), _ = mix_with_gt(_mixer(), preds, gts, np.random.default_rng(0))
    assert g0.labels.tolist() == [0, 1]
    assert torch.equal(g0.masks[1], b) and torch.equal(g0.masks[0], a & ~b)


def test_mixed_stage_runs_over_an_odd_last_batch(tiny_demo, monkeypatch):
    """4 val images in batches of 3: the last batch of 1 is scored unmixed, not refused."""
    from mmssis.models.augments import ARPInstanceMixer
    monkeypatch.setattr(semi_mask_detector, 'teacher_pseudo_instances',
                        gt_teacher_pseudo_instances)
    metrics = evaluate_pseudo_labels(_semi_model(), _val_loader(tiny_demo, batch_size=3),
                                     refiner=None,
                                     mixer=ARPInstanceMixer(num_pairs=1, min_area=50, seed=0))
    assert metrics['mixed_num_images'] == 4
    assert metrics['mixed_precision'] == pytest.approx(1.0)
