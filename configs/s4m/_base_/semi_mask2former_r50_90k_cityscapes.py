# Stage 2 (semi-supervised, no SAM) -- Mask2Former R50 teacher/student on Cityscapes, the
# Guided Distillation recipe S4M builds on. Everything but the split lives here;
# `../semi_mask2former_r50_90k_semi-{fraction}-cityscapes.py` set the annotation files.
#
# Official S4M code (`scripts/cityscapes/train_student.sh`, `config/add_cfg.py`):
# 16 labelled + 16 unlabelled images per iteration (here 8 GPUs x (2 + 2)), 90,000 poly
# iterations, AdamW 1e-4 / wd 0.05 / backbone x0.1 / clip 0.01 / AMP; teacher frozen for
# 15,000 iterations (`SSL.BURNIN_ITER` default 15000), then copied from the student and
# EMA-updated (keep rate 0.9996) every iteration; pseudo-label class threshold 0.7,
# unsupervised losses x2.0; the student is evaluated.
_base_ = [
    '../../_base_/models/mask2former_r50_cityscapes.py',
    '../../_base_/datasets/semi_cityscapes_instance.py',
    '../../_base_/schedules/mask2former_adamw-amp_poly-90k.py',
    '../../_base_/demo_runtime.py',
]
detector = _base_.model
model = dict(
    _delete_=True,
    type='SemiMaskDetector',
    detector=detector,
    data_preprocessor=dict(
        type='MultiBranchDataPreprocessor', data_preprocessor=detector.data_preprocessor),
    semi_train_cfg=dict(
        sup_weight=1.0,
        unsup_weight=2.0,
        score_thr=0.7,
        mask_thr=0.5,
        min_mask_area=5,
        projection_mode='bilinear',
        init_student_from_teacher=False,
        sam_refiner=None,
        instance_mixer=None),
    semi_test_cfg=dict(predict_on='student'))

burn_in_iters = 15000
custom_hooks = [
    dict(type='TeacherScheduleHook', burn_in_iters=burn_in_iters, momentum=0.9996, interval=1)
]
val_cfg = dict(type='TeacherStudentValLoop')
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=5000, max_keep_ckpts=3, save_last=True))
log_processor = dict(window_size=50)
# The stage-1 checkpoint: `--cfg-options load_from=<stage-1 .pth>` (fills the teacher only).
load_from = None
