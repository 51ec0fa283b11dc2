# Stage 2 (semi-supervised, no SAM) -- Mask R-CNN R50-FPN teacher/student on PASCAL VOC 2012
# with the S4M / Guided Distillation semi-supervised settings (EMA keep rate 0.9996, class
# score > 0.7, unsupervised losses x2.0, 1:1 batches). mmssis protocol: 8 GPUs x (2 + 2),
# lr 0.02, 40k iterations (x0.1 at 30k / 36k), teacher frozen for the first 10k.
_base_ = [
    '../../_base_/models/mask-rcnn_r50_fpn_voc.py',
    '../../_base_/datasets/semi_voc_instance.py',
    '../../_base_/schedules/sgd_90k.py',
    '../../_base_/gd_runtime.py',
]
detector = _base_.model
model = dict(
    _delete_=True,
    type='SemiMaskDetector',
    detector=detector,
    data_preprocessor=dict(
        type='MultiBranchDataPreprocessor', data_preprocessor=detector.data_preprocessor),
    semi_train_cfg=_base_.gd_semi_train_cfg,
    semi_test_cfg=_base_.gd_semi_test_cfg)
val_cfg = dict(type='TeacherStudentValLoop')

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
    dict(type='TeacherScheduleHook', burn_in_iters=burn_in_iters, momentum=0.9996, interval=1),
    # Pseudo-label precision / recall / mIoU (teacher and SAM-refined) on 50 held-out val
    # images at every validation, logged with the val metrics (TensorBoard included).
    dict(type='PseudoLabelQualityHook', dataloader=None, max_images=50),
]
default_hooks = dict(checkpoint=dict(interval=4000))

# The recipe: 8 GPUs x 4 images per iteration (global batch 32, the batch the
# learning rate belongs to). `tools/train.py --keep-global-batch` keeps it on other GPU
# counts; `--auto-scale-lr` scales the learning rate to the actual batch instead.
recipe_gpus = 8
auto_scale_lr = dict(base_batch_size=32)
