"""Metrics on predictions and ground truth in one frame (pseudo-label quality, confidence
calibration: ECE, per-class thresholds, SAM's benefit) and the runs of a semi detector's
pseudo-label path that feed them (``pseudo_label_eval``; models by duck typing, no import
of models, SAM or hooks)."""
from .calibration import (expected_calibration_error, match_detections,
                          per_class_calibration, precision_curve, reliability_curve,
                          select_thresholds)
from .pseudo_label_eval import calibration_records, evaluate_pseudo_labels, evaluate_sam_benefit
from .pseudo_label_quality import PseudoLabelQuality, format_quality_table, gt_instance_masks
from .sam_benefit import SamBenefit, format_benefit_table, refine_decisions, sam_helps

__all__ = [
    'expected_calibration_error', 'match_detections', 'per_class_calibration',
    'precision_curve', 'reliability_curve', 'select_thresholds', 'PseudoLabelQuality',
    'format_quality_table', 'gt_instance_masks', 'SamBenefit', 'sam_helps',
    'format_benefit_table', 'refine_decisions', 'evaluate_pseudo_labels', 'calibration_records',
    'evaluate_sam_benefit'
]
