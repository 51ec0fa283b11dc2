# Stage 2 (semi-supervised, no SAM) -- Mask R-CNN R50-FPN teacher/student on COCO with the
# S4M / Guided Distillation semi-supervised settings (teacher frozen for 25k iterations, then
# copied from the student and EMA-updated with keep rate 0.9996; class score > 0.7;
# unsupervised losses x2.0; 1:1 labelled:unlabelled batches) and MMDetection's semi-supervised
# SGD schedule length (soft teacher: 180k iterations, x0.1 at 120k / 160k): 8 GPUs x (2 + 2),
# lr 0.02.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../../_base_/datasets/semi_coco_instance.py',
    '../../_base_/schedules/sgd_90k.py',
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

batch_size = 4
train_dataloader = dict(
    batch_size=batch_size, sampler=dict(batch_size=batch_size, source_ratio=[2, 2]))

max_iters = 180000
train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[120000, 160000],
        gamma=0.1)
]
burn_in_iters = 25000
custom_hooks = [
    dict(type='TeacherScheduleHook', burn_in_iters=burn_in_iters, momentum=0.9996, interval=1)
]
val_cfg = dict(type='TeacherStudentValLoop')
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=5000, max_keep_ckpts=3, save_last=True))
log_processor = dict(window_size=50)
load_from = None
