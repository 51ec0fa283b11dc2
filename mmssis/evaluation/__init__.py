"""Pure metrics on predictions and ground truth in one frame: pseudo-label quality,
confidence calibration (ECE, per-class thresholds)."""
from .calibration import (expected_calibration_error, match_detections,
                          per_class_calibration, precision_curve, reliability_curve,
                          select_thresholds)
from .pseudo_label_quality import PseudoLabelQuality, format_quality_table, gt_instance_masks
from .sam_benefit import SamBenefit, format_benefit_table, refine_decisions, sam_helps

__all__ = [
    'expected_calibration_error', 'match_detections', 'per_class_calibration',
    'precision_curve', 'reliability_curve', 'select_thresholds', 'PseudoLabelQuality',
    'format_quality_table', 'gt_instance_masks', 'SamBenefit', 'sam_helps',
    'format_benefit_table', 'refine_decisions'
]
