"""SAM benefit per class: paired teacher vs refined IoU, the decision rule, the real path."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import mmssis.models.detectors.semi_mask_detector as semi_mask_detector
from mmssis.evaluation import evaluate_sam_benefit
from mmssis.evaluation import SamBenefit, format_benefit_table, refine_decisions, sam_helps
from mmssis.registry import MODELS
from mmssis.testing import echo_box_refiner, gt_teacher_pseudo_instances, tiny_mask_rcnn_cfg
from mmssis.testing.tiny_run import DEMO_SUP_CONFIG

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _box(y, x, s, size=64):
    m = torch.zeros((size, size), dtype=torch.bool)
    m[y:y + s, x:x + s] = True
    return m


def test_sam_helps_class_a_and_hurts_class_b():
    """Class 0: the teacher masks are eroded and SAM restores them; class 1: the teacher is
    right and SAM erodes. Eight images, one instance of each class per image."""
    acc = SamBenefit(num_classes=3)
    rng = np.random.default_rng(0)
    for _ in range(8):
        y0, x0, y1, x1 = (int(v) for v in rng.integers(2, 20, size=4))
        gt = torch.stack([_box(y0, x0, 20), _box(y1 + 30, x1 + 30, 20)])
        eroded = torch.stack([_box(y0 + 2, x0 + 2, 16), _box(y1 + 32, x1 + 32, 16)])
        teacher = torch.stack([eroded[0], gt[1]])
        refined = torch.stack([gt[0], eroded[1]])
        n = acc.update(teacher, refined, torch.tensor([0, 1]), torch.tensor([0.9, 0.8]), gt,
                       torch.tensor([0, 1]))
        assert n == 2
    table = acc.compute()
    assert table['num'].tolist() == [8, 8, 0]
    assert table['gain'][0] == pytest.approx(1 - 256 / 400) and table['gain'][1] < 0
    assert table['worse'][0] == 0 and table['worse'][1] == 1
    assert sam_helps(table) == [True, False, None]
    assert sam_helps(table, min_support=9) == [None, None, None]
    text = format_benefit_table(table, ['a', 'b', 'c'], sam_helps(table))
    assert 'yes' in text.splitlines()[1] and 'no' in text.splitlines()[2]
    assert '(too few)' in text.splitlines()[3]


def test_unmatched_teacher_masks_are_not_scored():
    acc = SamBenefit(num_classes=1)
    gt = torch.stack([_box(0, 0, 10)])
    wrong = torch.stack([_box(40, 40, 10)])  # matches no GT
    assert acc.update(wrong, gt, torch.tensor([0]), None, gt, torch.tensor([0])) == 0
    assert acc.compute()['num'].tolist() == [0]
    with pytest.raises(ValueError, match='pair up'):
        acc.update(wrong, torch.zeros((2, 64, 64), dtype=torch.bool), torch.tensor([0]),
                   None, gt, torch.tensor([0]))


def test_measured_through_the_pseudo_label_path(tiny_demo, monkeypatch):
    """A teacher returning the GT at the resized view and the box-drawing echo SAM: SAM can
    only lose, and the pairs come from the detector's own kept / refined instances."""
    monkeypatch.setattr(semi_mask_detector, 'teacher_pseudo_instances',
                        gt_teacher_pseudo_instances)
    det = tiny_mask_rcnn_cfg(num_classes=4)
    cfg = ConfigDict(type='SemiMaskDetector', detector=det,
                     data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                                            data_preprocessor=det['data_preprocessor']))
    with DefaultScope.overwrite_default_scope('mmssis'):
        model = MODELS.build(cfg)
        loader_cfg = copy.deepcopy(Config.fromfile(osp.join(REPO, DEMO_SUP_CONFIG)).val_dataloader)
        loader_cfg.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader_cfg.dataset.data_root = tiny_demo.root + '/'
        loader = Runner.build_dataloader(loader_cfg)
    table = evaluate_sam_benefit(model, loader, refiner=echo_box_refiner())
    assert table['num'].sum() > 0
    scored = table['num'] > 0
    # a perfect teacher: SAM (boxes of rotated, round and pointed shapes) can only lose,
    # and the rule says so for every class with enough pairs
    assert np.all(table['teacher_iou'][scored] == pytest.approx(1.0))
    assert np.all(table['gain'][scored] < 0) and np.all(table['worse'][scored] > 0.5)
    decisions = sam_helps(table)
    assert all(d is False for d, n in zip(decisions, table['num']) if n >= 5)
    assert any(d is False for d in decisions)


def test_gather_pools_the_pairs_of_every_rank(monkeypatch):
    """Two ranks with different pairs: after gather() both compute the pooled table."""
    import mmengine.dist as dist
    acc = SamBenefit(num_classes=2)
    gt = torch.stack([_box(0, 0, 20)])
    acc.update(torch.stack([_box(1, 1, 18)]), gt, torch.tensor([0]), None, gt,
               torch.tensor([0]))
    other = [[(0.5, 0.9)], [(0.8, 0.7), (0.9, 0.6)]]  # the other rank's pairs
    monkeypatch.setattr(dist, 'get_world_size', lambda: 2)
    monkeypatch.setattr(dist, 'all_gather_object', lambda obj: [obj, other])
    table = acc.gather().compute()
    assert table['num'].tolist() == [2, 2]
    assert table['gain'][1] == pytest.approx(-0.2)


def test_refine_decisions():
    assert refine_decisions([True, False, None]) == [True, False, False]
    assert refine_decisions([True, False, None], refine_undecided=True) == [True, False, True]
