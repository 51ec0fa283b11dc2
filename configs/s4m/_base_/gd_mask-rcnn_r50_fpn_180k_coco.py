# Stage 2 (semi-supervised, no SAM) -- Mask R-CNN R50-FPN teacher/student on COCO with the
# S4M / Guided Distillation semi-supervised settings (teacher frozen for 25k iterations, then
# copied from the student and EMA-updated with keep rate 0.9996; class score > 0.7;
# unsupervised losses x2.0; 1:1 labelled:unlabelled batches) and MMDetection's semi-supervised
# SGD schedule length (soft teacher: 180k iterations, x0.1 at 120k / 160k): 4 GPUs x (3 + 3),
# the official S4M per-GPU layout (ARP mixes 2 of the 3 unlabelled images per GPU), lr 0.015
# (mmdet's 0.02 for 32 images, scaled linearly to the global batch of 24).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../../_base_/datasets/semi_coco_instance.py',
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

batch_size = 6
train_dataloader = dict(
    batch_size=batch_size, sampler=dict(batch_size=batch_size, source_ratio=[3, 3]))
optim_wrapper = dict(optimizer=dict(lr=0.015))

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
    dict(type='TeacherScheduleHook', burn_in_iters=burn_in_iters, momentum=0.9996, interval=1),
    # Pseudo-label precision / recall / mIoU (teacher and SAM-refined) on 50 held-out val
    # images at every validation, logged with the val metrics (TensorBoard included).
    dict(type='PseudoLabelQualityHook', dataloader=None, max_images=50),
]
default_hooks = dict(checkpoint=dict(interval=5000))

# The recipe: 4 GPUs x 6 images per iteration (global batch 24, the batch the
# learning rate belongs to). `tools/train.py --keep-global-batch` keeps it on other GPU
# counts (the ARP check of tools/train.py then refuses fewer than 3 unlabelled images per
# GPU); `--auto-scale-lr` scales the learning rate to the actual batch instead.
recipe_gpus = 4
auto_scale_lr = dict(base_batch_size=24)

# Every process seeds its global RNG with seed + rank (mmengine `diff_rank_seed`), as the
# official detectron2 runs do: Mask R-CNN's RoI sampling and Mask2Former's loss points differ
# per GPU. The data sampler then takes a seed synchronised from rank 0.
randomness = dict(seed=0, diff_rank_seed=True)
