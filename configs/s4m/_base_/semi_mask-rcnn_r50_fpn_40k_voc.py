# Stage 2 (semi-supervised, no SAM) -- Mask R-CNN R50-FPN teacher/student on PASCAL VOC 2012
# with the S4M / Guided Distillation semi-supervised settings (EMA keep rate 0.9996, class
# score > 0.7, unsupervised losses x2.0, 1:1 batches). mmssis protocol: 8 GPUs x (2 + 2),
# lr 0.02, 40k iterations (x0.1 at 30k / 36k), teacher frozen for the first 10k.
_base_ = [
    '../../_base_/models/mask-rcnn_r50_fpn_voc.py',
    '../../_base_/datasets/semi_voc_instance.py',
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

max_iters = 40000
train_cfg = dict(max_iters=max_iters, val_interval=4000)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
        milestones=[30000, 36000], gamma=0.1)
]
burn_in_iters = 10000
custom_hooks = [
    dict(type='TeacherScheduleHook', burn_in_iters=burn_in_iters, momentum=0.9996, interval=1)
]
val_cfg = dict(type='TeacherStudentValLoop')
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=4000, max_keep_ckpts=3, save_last=True))
log_processor = dict(window_size=50)
load_from = None
