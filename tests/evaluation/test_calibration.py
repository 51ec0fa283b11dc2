"""Calibration maths: greedy mask matching, ECE / reliability, per-class thresholds."""
import numpy as np
import pytest
import torch

from mmssis.evaluation import (expected_calibration_error, match_detections,
                               per_class_calibration, precision_curve, reliability_curve,
                               select_thresholds)


def _box(x1, y1, x2, y2, size=20):
    m = np.zeros((size, size), dtype=bool)
    m[y1:y2, x1:x2] = True
    return m


# ---------------------------------------------------------------------- matching
def test_match_detections_greedy_by_score_within_class():
    gt = np.stack([_box(0, 0, 10, 10), _box(10, 10, 20, 20), _box(0, 10, 10, 20)])
    gt_labels = [0, 0, 1]
    preds = np.stack([
        _box(0, 0, 10, 8),    # 0: IoU 0.8 with gt0, low score
        _box(0, 0, 10, 10),   # 1: IoU 1.0 with gt0, lower score still
        _box(0, 0, 10, 9),    # 2: highest score, IoU 0.9 with gt0 -> takes gt0 first
        _box(10, 10, 20, 20),  # 3: exact gt1
        _box(10, 10, 20, 20),  # 4: duplicate of gt1 (lower score) -> FP
        _box(0, 10, 10, 20),  # 5: exact gt2 region but wrong class -> FP
        _box(0, 10, 10, 20),  # 6: exact gt2, right class
        _box(0, 10, 10, 13),  # 7: IoU 0.3 with gt2 (class 1): below iou_thr -> FP
    ])
    labels = [0, 0, 0, 0, 0, 0, 1, 1]
    scores = [0.5, 0.4, 0.9, 0.8, 0.7, 0.95, 0.6, 0.99]
    correct = match_detections(torch.as_tensor(preds), torch.tensor(labels),
                               torch.tensor(scores), gt, gt_labels, iou_thr=0.5)
    # 2 takes gt0 before the better-fitting 0/1; 0 and 1 then find nothing of class 0 left
    # except gt1, which 3 took. 7 (higher score) misses gt2, so 6 still gets it.
    assert correct.tolist() == [False, False, True, True, False, False, True, False]


def test_match_detections_iou_threshold_and_empty_inputs():
    gt = _box(0, 0, 10, 10)[None]
    pred = _box(0, 0, 10, 6)[None]  # IoU 0.6
    assert match_detections(pred, [0], [0.9], gt, [0], iou_thr=0.5).tolist() == [True]
    assert match_detections(pred, [0], [0.9], gt, [0], iou_thr=0.7).tolist() == [False]
    assert match_detections(pred, [0], [0.9], np.zeros((0, 20, 20)), [], 0.5).tolist() == [
        False]
    assert match_detections(np.zeros((0, 20, 20)), [], [], gt, [0]).shape == (0, )
    with pytest.raises(ValueError, match='frame'):
        match_detections(pred, [0], [0.9], np.zeros((1, 10, 10)), [0])


# ---------------------------------------------------------------------- reliability / ECE
def test_reliability_curve_bins_and_ece_by_hand():
    scores = [0.05, 0.15, 0.95, 1.0, 0.97]
    correct = [False, True, True, False, True]
    curve = reliability_curve(scores, correct, num_bins=10)
    assert curve['counts'].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 3]  # 1.0 in last bin
    assert np.isnan(curve['accuracy'][2]) and np.isnan(curve['confidence'][2])
    assert curve['accuracy'][9] == pytest.approx(2 / 3)
    assert curve['confidence'][9] == pytest.approx((0.95 + 1.0 + 0.97) / 3)
    expected = (1 * 0.05 + 1 * 0.85 + 3 * abs(2 / 3 - 2.92 / 3)) / 5
    assert expected_calibration_error(scores, correct) == pytest.approx(expected)
    assert np.isnan(expected_calibration_error([], []))


def test_ece_calibrated_vs_overconfident():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 40000)
    calibrated = rng.uniform(0, 1, scores.shape) < scores
    over = rng.uniform(0, 1, scores.shape) < scores**2  # accuracy s^2 < confidence s
    assert expected_calibration_error(scores, calibrated) < 0.02
    assert expected_calibration_error(scores, over) > 0.1


def test_per_class_calibration_separates_classes():
    rng = np.random.default_rng(1)
    scores = rng.uniform(0, 1, 20000)
    labels = np.repeat([0, 1], 10000)
    correct = np.where(labels == 0, rng.uniform(0, 1, 20000) < scores, False)
    out = per_class_calibration(scores, labels, correct, num_classes=3)
    assert out['class_ece'][0] < 0.03
    assert out['class_ece'][1] == pytest.approx(scores[labels == 1].mean(), abs=1e-9)
    assert np.isnan(out['class_ece'][2])
    assert out['class_counts'].tolist() == [10000, 10000, 0]
    assert len(out['class_curves']) == 3


def test_precision_curve_by_hand():
    out = precision_curve([0.9, 0.8, 0.6, 0.3], [True, False, True, False],
                          thresholds=[0.0, 0.6, 0.85, 0.95])
    assert out['support'].tolist() == [4, 3, 1, 0]
    np.testing.assert_allclose(out['precision'][:3], [0.5, 2 / 3, 1.0])
    assert np.isnan(out['precision'][3])


# ---------------------------------------------------------------------- thresholds
def test_select_thresholds_by_hand():
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    correct = [1, 1, 1, 0, 0, 1]
    # kept sets: top4 has precision 3/4 (top5 3/5, all 4/6) -> cut halfway 0.6 | 0.5.
    thr = select_thresholds(scores, [0] * 6, np.array(correct, bool), 1,
                            target_precision=0.75, min_support=1)
    assert thr[0] == pytest.approx(0.55)
    # Everything above min_thr is good enough -> min_thr itself.
    assert select_thresholds(scores, [0] * 6, np.array(correct, bool), 1,
                             target_precision=0.6, min_support=1)[0] == 0.3
    # Target unreachable -> max_thr; too few detections >= min_thr -> default.
    assert select_thresholds(scores, [0] * 6, np.zeros(6, bool), 1,
                             min_support=1)[0] == 0.95
    assert select_thresholds(scores, [0] * 6, np.ones(6, bool), 1, min_thr=0.75,
                             min_support=3, default=0.66)[0] == 0.66


def test_select_thresholds_hit_known_precision_curves():
    """correct ~ Bernoulli(clip(score + offset_c)), scores ~ U(0, 1).

    precision(score >= t) = (1 + t) / 2 + offset, so the 0.8 target is met from
    t* = 0.6 - 2 * offset.
    """
    rng = np.random.default_rng(0)
    offsets = [0.0, 0.1, -0.1, -0.25, 0.3]  # t* = 0.6, 0.4, 0.8, 1.1 (>max), 0 (<min)
    n = 40000
    scores = rng.uniform(0, 1, n * len(offsets))
    labels = np.repeat(np.arange(len(offsets)), n)
    prob = np.clip(scores + np.asarray(offsets)[labels], 0, 1)
    correct = rng.uniform(0, 1, scores.shape) < prob
    # class 5 has 3 detections only; class 6 none at all
    scores = np.r_[scores, 0.9, 0.8, 0.7]
    labels = np.r_[labels, 5, 5, 5]
    correct = np.r_[correct, True, True, True]
    thr = select_thresholds(scores, labels, correct, num_classes=7, target_precision=0.8,
                            min_thr=0.3, max_thr=0.95,
                            default=[0.7, 0.7, 0.7, 0.7, 0.7, 0.61, 0.62], min_support=5)
    np.testing.assert_allclose(thr[:3], [0.6, 0.4, 0.8], atol=0.05)
    assert thr[3] == 0.95 and thr[4] == 0.3  # clipped
    assert thr[5] == 0.61 and thr[6] == 0.62  # per-class defaults
    for cls in range(5):  # the rule's promise holds exactly on the sample
        sel = labels == cls
        kept = scores[sel] >= thr[cls]
        if thr[cls] < 0.95:
            assert correct[sel][kept].mean() >= 0.8
            # the detector compares with '>': same set
            assert np.array_equal(kept, scores[sel] > thr[cls])


def test_select_thresholds_validates():
    with pytest.raises(ValueError):
        select_thresholds([0.5], [0], [True], 1, min_thr=0.9, max_thr=0.5)
    with pytest.raises(ValueError):
        select_thresholds([0.5, 0.6], [0], [True], 1)
