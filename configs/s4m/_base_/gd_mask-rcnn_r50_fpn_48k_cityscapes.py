# Stage 2 (semi-supervised, no SAM) -- Mask R-CNN R50-FPN teacher/student on Cityscapes with
# the S4M / Guided Distillation semi-supervised settings (teacher frozen for 15k iterations,
# then copied from the student and EMA-updated with keep rate 0.9996; class score > 0.7;
# unsupervised losses x2.0; 1:1 labelled:unlabelled batches): 2 GPUs x (4 + 4), lr 0.01,
# 48k iterations (twice stage 1), x0.1 at 42k.
_base_ = [
    '../../_base_/models/mask-rcnn_r50_fpn_cityscapes.py',
    '../../_base_/datasets/semi_cityscapes_instance.py',
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

# 4 unlabelled images per GPU, as the official Cityscapes layout: ARP mixes 2 of them (with
# 1 per GPU it could not mix at all). The global batch (16) and the learning rate stay.
batch_size = 8
train_dataloader = dict(
    batch_size=batch_size, sampler=dict(batch_size=batch_size, source_ratio=[4, 4]))
max_iters = 48000
train_cfg = dict(max_iters=max_iters, val_interval=4000)
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR', begin=0, end=max_iters, by_epoch=False, milestones=[42000],
        gamma=0.1)
]
burn_in_iters = 15000
custom_hooks = [
    dict(type='TeacherScheduleHook', burn_in_iters=burn_in_iters, momentum=0.9996, interval=1),
    # Pseudo-label precision / recall / mIoU (teacher and SAM-refined) on 50 held-out val
    # images at every validation, logged with the val metrics (TensorBoard included).
    dict(type='PseudoLabelQualityHook', dataloader=None, max_images=50),
]
default_hooks = dict(checkpoint=dict(interval=4000))

# The recipe: 2 GPUs x 8 images per iteration (global batch 16, the batch the
# learning rate belongs to). `tools/train.py --keep-global-batch` keeps it on other GPU
# counts (the ARP check of tools/train.py then refuses fewer than 3 unlabelled images per
# GPU); `--auto-scale-lr` scales the learning rate to the actual batch instead.
recipe_gpus = 2
auto_scale_lr = dict(base_batch_size=16)

# Every process seeds its global RNG with seed + rank (mmengine `diff_rank_seed`), as the
# official detectron2 runs do: Mask R-CNN's RoI sampling and Mask2Former's loss points differ
# per GPU. The data sampler then takes a seed synchronised from rank 0.
randomness = dict(seed=0, diff_rank_seed=True)
