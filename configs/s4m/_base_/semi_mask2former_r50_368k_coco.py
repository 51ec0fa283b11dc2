# Stage 2 (semi-supervised, no SAM) -- Mask2Former R50 teacher/student on COCO, the Guided
# Distillation recipe S4M builds on. Everything but the split lives here;
# `../semi_mask2former_r50_368k_semi-{fraction}-coco.py` set the annotation files, and the S4M
# variants inherit those and switch on SAM refinement / ARP / distillation.
#
# Official S4M code (cvlab-kaist/S4M: `scripts/coco/train_student.sh`, `config/add_cfg.py`,
# `mask2former/maskformer_model.py`):
# * 12 labelled + 12 unlabelled images per iteration (here 4 GPUs x (3 + 3)), 368,750 iters,
#   AdamW 1e-4 / wd 0.05 / backbone x0.1 / clip 0.01 / AMP (see the schedule base);
# * teacher = stage-1 checkpoint (`load_from`, fills the teacher only; the student starts from
#   ImageNet), frozen for the first 25,000 iterations (`SSL.BURNIN_ITER 25000`), then
#   replaced by the student and EMA-updated with keep rate 0.9996 (`SSL.EMA_DECAY`) every
#   iteration (`SSL.FREQ 1`);
# * pseudo-labels: queries whose non-background class probability > 0.7 (`thresh_class`),
#   masks sigmoid > 0.5, tiny masks dropped; unsupervised losses x2.0; evaluation of the
#   student (`SSL.EVAL_WHO STUDENT`).
_base_ = [
    '../../_base_/models/mask2former_r50_coco.py',
    '../../_base_/datasets/semi_coco_instance.py',
    '../../_base_/schedules/mask2former_adamw-amp_368k.py',
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
        # The official code drops masks whose soft area is <= 5 px at the 1/4-resolution
        # mask output; mmssis measures binary area at the teacher view's resolution.
        min_mask_area=5,
        projection_mode='bilinear',
        init_student_from_teacher=False,
        sam_refiner=None,
        instance_mixer=None),
    semi_test_cfg=dict(predict_on='student'))

burn_in_iters = 25000
custom_hooks = [
    dict(type='TeacherScheduleHook', burn_in_iters=burn_in_iters, momentum=0.9996, interval=1)
]
val_interval = 7000  # official CHECKPOINT_PERIOD / EVAL_PERIOD for the COCO student
train_cfg = dict(val_interval=val_interval)
val_cfg = dict(type='TeacherStudentValLoop')
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=val_interval, max_keep_ckpts=3, save_last=True))
log_processor = dict(window_size=50)
# The stage-1 checkpoint: `--cfg-options load_from=<stage-1 .pth>` (fills the teacher only).
load_from = None
