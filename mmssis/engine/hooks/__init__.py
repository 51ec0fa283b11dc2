from .teacher_schedule_hook import (TeacherScheduleHook, ema_update_, freeze_teacher,
                                    hard_copy_)

__all__ = ['TeacherScheduleHook', 'freeze_teacher', 'hard_copy_', 'ema_update_']
from .pseudo_quality_hook import PseudoLabelQualityHook  # noqa: F401
from .calibration_hook import ConfidenceCalibrationHook  # noqa: E402,F401
__all__ += ['ConfidenceCalibrationHook']
from .pseudo_label_vis_hook import PseudoLabelVisHook  # noqa: E402,F401
from .rng_state_hook import RngStateHook  # noqa: E402,F401
