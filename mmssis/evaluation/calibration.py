"""Confidence calibration of pseudo-label scores: matching, reliability, thresholds.

S4M (like Guided Distillation) keeps a teacher prediction as a pseudo-label when its class
score exceeds one fixed threshold (0.7) for every class. Scores of different classes are
not equally reliable, so this module measures, on images with ground truth, how often a
teacher detection of each class at a given score is actually right, and picks per-class
thresholds that reach a target pseudo-label precision.

Vocabulary used throughout:

* a *detection* has a score in ``[0, 1]``, a class label in ``[0, num_classes)`` and a
  boolean *correct* flag from :func:`match_detections` (it matches a ground-truth mask of
  the same class with mask IoU >= ``iou_thr``; each ground truth matches at most once);
* *confidence* is the detection score, *accuracy* the fraction of correct detections;
* *precision at t* is the accuracy of the detections with ``score >= t``.

All functions are pure (NumPy / torch in, NumPy or floats out) and device-agnostic.
"""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from mmssis.structures import as_bool_masks, match_instances

ArrayLike = Union[np.ndarray, Tensor, Sequence[float]]


def _np(x: ArrayLike, dtype=None) -> np.ndarray:
    """A 1-D NumPy copy of ``x`` (tensor, array or sequence)."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype).reshape(-1)


def match_detections(pred_masks: Union[np.ndarray, Tensor],
                     pred_labels: ArrayLike,
                     pred_scores: ArrayLike,
                     gt_masks: Union[np.ndarray, Tensor],
                     gt_labels: ArrayLike,
                     iou_thr: float = 0.5) -> np.ndarray:
    """Flag each detection as correct (true positive) or not, COCO-style greedy matching.

    Detections are visited in descending score order (stable for ties); each takes the
    still-unmatched ground truth *of its own class* with the highest mask IoU and is
    correct if that IoU is ``>= iou_thr``. A matched ground truth is consumed, so a
    duplicate detection of an already matched object is a false positive.

    Args:
        pred_masks: (N, H, W) binary masks (bool/0-1 tensor, array or ``BitmapMasks``).
        pred_labels: (N,) class indices.
        pred_scores: (N,) confidences (only their order matters here).
        gt_masks: (M, H, W) binary ground-truth masks in the *same* pixel frame.
        gt_labels: (M,) class indices.
        iou_thr: Minimum mask IoU of a match.

    Returns:
        (N,) bool array, in the input order of the detections.
    """
    labels = _np(pred_labels, np.int64)
    scores = _np(pred_scores, np.float64)
    g_labels = _np(gt_labels, np.int64)
    correct = np.zeros(len(labels), dtype=bool)
    if len(labels) == 0 or len(g_labels) == 0:
        return correct
    pred = as_bool_masks(pred_masks, 'cpu')
    gt = as_bool_masks(gt_masks, 'cpu')
    for name, m in (('pred_masks', pred), ('gt_masks', gt)):
        if m.dim() != 3:
            raise ValueError(f'{name} must be (N, H, W), got shape {tuple(m.shape)}')
    if pred.shape[1:] != gt.shape[1:]:
        raise ValueError(f'pred and gt masks must share a frame, got {tuple(pred.shape[1:])}'
                         f' vs {tuple(gt.shape[1:])}')
    # The same greedy rule as the pseudo-label quality metric.
    match = match_instances(pred, gt, torch.from_numpy(labels), torch.from_numpy(g_labels),
                            torch.from_numpy(scores), iou_thr=iou_thr, class_aware=True)
    return match.pred_to_gt >= 0


def reliability_curve(scores: ArrayLike, correct: ArrayLike,
                      num_bins: int = 10) -> Dict[str, np.ndarray]:
    """Mean confidence and accuracy per equal-width score bin.

    Bin ``b`` (0-based) holds scores in ``[b / num_bins, (b + 1) / num_bins)``; the last bin
    also holds ``1.0``. Scores outside ``[0, 1]`` are clipped into it.

    Args:
        scores: (N,) confidences.
        correct: (N,) bool correctness flags.
        num_bins: Number of bins ``B``.

    Returns:
        Dict with ``edges`` (B + 1,), ``confidence`` (B,) mean score per bin,
        ``accuracy`` (B,) fraction correct per bin (both NaN for empty bins) and
        ``counts`` (B,) int.
    """
    if num_bins < 1:
        raise ValueError(f'num_bins must be >= 1, got {num_bins}')
    s = np.clip(_np(scores, np.float64), 0.0, 1.0)
    c = _np(correct, bool).astype(np.float64)
    if len(s) != len(c):
        raise ValueError(f'{len(s)} scores but {len(c)} correctness flags')
    bins = np.minimum((s * num_bins).astype(np.int64), num_bins - 1)
    counts = np.bincount(bins, minlength=num_bins)
    with np.errstate(invalid='ignore', divide='ignore'):
        conf = np.bincount(bins, weights=s, minlength=num_bins) / counts
        acc = np.bincount(bins, weights=c, minlength=num_bins) / counts
    return dict(edges=np.linspace(0.0, 1.0, num_bins + 1), confidence=conf, accuracy=acc,
                counts=counts)


def expected_calibration_error(scores: ArrayLike, correct: ArrayLike,
                               num_bins: int = 10) -> float:
    """ECE with equal-width bins: ``sum_b (n_b / N) * |accuracy_b - confidence_b|``.

    Args:
        scores: (N,) confidences.
        correct: (N,) bool correctness flags.
        num_bins: Number of bins (see :func:`reliability_curve`).

    Returns:
        ECE in ``[0, 1]``; NaN when there are no detections.
    """
    curve = reliability_curve(scores, correct, num_bins)
    counts = curve['counts']
    total = counts.sum()
    if total == 0:
        return float('nan')
    used = counts > 0
    gap = np.abs(curve['accuracy'][used] - curve['confidence'][used])
    return float((counts[used] * gap).sum() / total)


def precision_curve(scores: ArrayLike, correct: ArrayLike,
                    thresholds: Optional[ArrayLike] = None) -> Dict[str, np.ndarray]:
    """Precision of the detections with ``score >= t`` for each threshold ``t``.

    Args:
        scores: (N,) confidences.
        correct: (N,) bool correctness flags.
        thresholds: (T,) thresholds; defaults to ``0.00, 0.01, ..., 1.00``.

    Returns:
        Dict with ``thresholds`` (T,), ``precision`` (T,) (NaN where nothing is kept) and
        ``support`` (T,) int, the number of detections with ``score >= t``.
    """
    s = _np(scores, np.float64)
    c = _np(correct, bool)
    t = np.linspace(0.0, 1.0, 101) if thresholds is None else _np(thresholds, np.float64)
    order = np.argsort(s)
    s_sorted = s[order]
    # Number of correct detections among the n highest-scored ones (suffix sums).
    correct_at_or_above = np.concatenate([np.cumsum(c[order][::-1])[::-1], [0]])
    first = np.searchsorted(s_sorted, t, side='left')  # index of the first score >= t
    support = len(s) - first
    with np.errstate(invalid='ignore', divide='ignore'):
        precision = correct_at_or_above[first] / support
    return dict(thresholds=t, precision=precision.astype(np.float64), support=support)


def per_class_calibration(scores: ArrayLike, labels: ArrayLike, correct: ArrayLike,
                          num_classes: int, num_bins: int = 10) -> Dict[str, object]:
    """Overall and per-class ECE and reliability curves.

    Args:
        scores: (N,) confidences.
        labels: (N,) class indices in ``[0, num_classes)``.
        correct: (N,) bool correctness flags.
        num_classes: Number of classes ``C``.
        num_bins: Number of equal-width bins.

    Returns:
        Dict with ``ece`` (float, all detections), ``class_ece`` (C,) (NaN for classes
        without detections), ``curve`` (the overall :func:`reliability_curve`),
        ``class_curves`` (list of C curves) and ``class_counts`` (C,) int.
    """
    s = _np(scores, np.float64)
    lab = _np(labels, np.int64)
    c = _np(correct, bool)
    class_curves: List[Dict[str, np.ndarray]] = []
    class_ece = np.full(num_classes, np.nan)
    for cls in range(num_classes):
        sel = lab == cls
        class_curves.append(reliability_curve(s[sel], c[sel], num_bins))
        class_ece[cls] = expected_calibration_error(s[sel], c[sel], num_bins)
    return dict(ece=expected_calibration_error(s, c, num_bins), class_ece=class_ece,
                curve=reliability_curve(s, c, num_bins), class_curves=class_curves,
                class_counts=np.bincount(lab[(lab >= 0) & (lab < num_classes)],
                                         minlength=num_classes))


def _class_threshold(scores: np.ndarray, correct: np.ndarray, target_precision: float,
                     min_thr: float, max_thr: float) -> float:
    """Lowest admissible threshold of one class (see :func:`select_thresholds`)."""
    order = np.argsort(-scores, kind='stable')
    s = scores[order]
    hits = np.cumsum(correct[order])
    # Only cut between two *different* scores: index k keeps s[0..k] (k = end of a tie run).
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    kept_min = s[ends]
    next_score = np.r_[s, -np.inf][ends + 1]
    # The cut keeping s[0..k] lies halfway to the next lower score (the last one: half of
    # s[k]), so `score > t` and `score >= t` select the same detections.
    cut = np.where(np.isfinite(next_score), (kept_min + next_score) / 2, kept_min / 2)
    precision = hits[ends] / (ends + 1)
    # Every admissible threshold keeps exactly one of these sets: t = min_thr keeps all
    # scores >= min_thr; a cut in (min_thr, max_thr] keeps the scores above it.
    n_kept = int((s >= min_thr).sum())
    if n_kept and hits[n_kept - 1] / n_kept >= target_precision:
        return float(min_thr)
    ok = (cut > min_thr) & (cut <= max_thr) & (precision >= target_precision)
    if ok.any():
        return float(cut[ok].min())
    return float(max_thr)


def select_thresholds(scores: ArrayLike,
                      labels: ArrayLike,
                      correct: ArrayLike,
                      num_classes: int,
                      target_precision: float = 0.8,
                      min_thr: float = 0.3,
                      max_thr: float = 0.95,
                      default: Union[float, Sequence[float]] = 0.7,
                      min_support: int = 5) -> np.ndarray:
    """Per-class score thresholds reaching a target pseudo-label precision.

    For each class ``c`` with detections ``D_c`` (scores ``s``, correctness ``y``):

    1. *Support* ``n_c = |{d in D_c : s_d >= min_thr}|``. If ``n_c < min_support`` the
       class gets ``default`` (the estimate would be noise).
    2. Candidate thresholds are ``min_thr`` and every midpoint between two consecutive
       distinct scores of ``D_c`` (below the lowest score: half of it) lying in
       ``(min_thr, max_thr]``. Midpoints, not the scores themselves, make ``score > t``
       (the detector's rule) and ``score >= t`` keep the same detections.
    3. ``precision(t) = |{d : s_d >= t, y_d}| / |{d : s_d >= t}|``. The threshold is the
       lowest candidate with ``precision(t) >= target_precision``. Any ``t'`` between the
       next lower score and the returned ``t`` keeps the same set, so this is the lowest
       threshold up to that tie.
    4. If no candidate reaches the target, the class gets ``max_thr`` (the most
       conservative allowed value). Thresholds are therefore always in
       ``[min_thr, max_thr]`` except ``default`` values, which are returned as given.

    Precision is not monotonic in ``t``; the rule takes the *lowest* threshold reaching
    the target, not the lowest one above which the target holds everywhere.

    Args:
        scores: (N,) detection confidences.
        labels: (N,) class indices in ``[0, num_classes)``; others are ignored.
        correct: (N,) bool correctness flags (see :func:`match_detections`).
        num_classes: Number of classes ``C``.
        target_precision: Wanted precision of the kept pseudo-labels.
        min_thr: Lowest threshold returned (apart from ``default``).
        max_thr: Highest threshold returned (apart from ``default``).
        default: Threshold for classes with too little support: a float or (C,) values.
        min_support: Minimum number of detections with ``score >= min_thr``.

    Returns:
        (C,) float64 thresholds.
    """
    if not 0.0 <= min_thr <= max_thr <= 1.0:
        raise ValueError(f'need 0 <= min_thr <= max_thr <= 1, got {min_thr}, {max_thr}')
    s = _np(scores, np.float64)
    lab = _np(labels, np.int64)
    c = _np(correct, bool)
    if not len(s) == len(lab) == len(c):
        raise ValueError(f'lengths differ: {len(s)} scores, {len(lab)} labels, '
                         f'{len(c)} flags')
    defaults = np.broadcast_to(np.asarray(default, dtype=np.float64), (num_classes, )).copy()
    thresholds = defaults.copy()
    for cls in range(num_classes):
        sel = lab == cls
        if int((s[sel] >= min_thr).sum()) < min_support:
            continue
        thresholds[cls] = _class_threshold(s[sel], c[sel], target_precision, min_thr,
                                           max_thr)
    return thresholds
