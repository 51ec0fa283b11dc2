from .calibration import (expected_calibration_error, mask_iou, match_detections,
                          per_class_calibration, precision_curve, reliability_curve,
                          select_thresholds)

__all__ = [
    'expected_calibration_error', 'mask_iou', 'match_detections', 'per_class_calibration',
    'precision_curve', 'reliability_curve', 'select_thresholds'
]
from .pseudo_label_quality import PseudoLabelQuality, evaluate_pseudo_labels  # noqa: E402,F401
