from .calibration_hook import ConfidenceCalibrationHook
from .calibration_slice import CalibrationSliceHook
from .pseudo_label_vis_hook import PseudoLabelVisHook
from .pseudo_quality_hook import PseudoLabelQualityHook
from .sam_benefit_hook import SamBenefitHook
from .teacher_schedule_hook import TeacherScheduleHook, ema_update_, freeze_teacher, hard_copy_

__all__ = [
    'TeacherScheduleHook', 'freeze_teacher', 'hard_copy_', 'ema_update_',
    'ConfidenceCalibrationHook', 'PseudoLabelQualityHook', 'PseudoLabelVisHook',
    'CalibrationSliceHook', 'SamBenefitHook'
]
