# Runtime of the Guided-Distillation-style semi-supervised configs (`gd_*` and the `s4m_*`
# built on them): the mmssis runtime plus the teacher-student settings every paper model and
# data set shares (S4M / Guided Distillation: class score > 0.7, unsupervised losses x2.0).
# A `gd_*` base wraps its detector with
#   model = dict(_delete_=True, type='SemiMaskDetector', detector=detector,
#                data_preprocessor=dict(type='MultiBranchDataPreprocessor', ...),
#                semi_train_cfg=_base_.gd_semi_train_cfg, semi_test_cfg=_base_.gd_semi_test_cfg)
# and sets `val_cfg = dict(type='TeacherStudentValLoop')` (the schedule bases define
# val_cfg too, so it cannot live here), its burn-in (TeacherScheduleHook) and checkpoint
# interval.
_base_ = './demo_runtime.py'

gd_semi_train_cfg = dict(
    sup_weight=1.0,
    unsup_weight=2.0,
    score_thr=0.7,
    mask_thr=0.5,
    # The official Mask2Former code drops masks whose soft area is <= 5 px at the
    # 1/4-resolution mask output; mmssis measures binary area at the teacher view's
    # resolution.
    min_mask_area=5,
    projection_mode='bilinear',
    init_student_from_teacher=False,
    sam_refiner=None,
    instance_mixer=None)
gd_semi_test_cfg = dict(predict_on='student')
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, max_keep_ckpts=3, save_last=True))
log_processor = dict(window_size=50)
# The stage-1 checkpoint: `--cfg-options load_from=<stage-1 .pth>` (fills the teacher only).
load_from = None
