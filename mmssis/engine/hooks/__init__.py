from .teacher_schedule_hook import (TeacherScheduleHook, ema_update_, freeze_teacher,
                                    hard_copy_)

__all__ = ['TeacherScheduleHook', 'freeze_teacher', 'hard_copy_', 'ema_update_']
