# Stage 1 (teacher pre-training) -- Mask R-CNN R50-FPN on a labelled Cityscapes split, same
# data protocol as the Mask2Former configs. Schedule: MMDetection's Cityscapes Mask R-CNN
# length (~24k iterations of 8 images, lr 0.01, x0.1 at 7/8) from an ImageNet backbone (no
# COCO initialisation, which would leak extra labels into the semi-supervised protocol).
_base_ = [
    '../../_base_/models/mask-rcnn_r50_fpn_cityscapes.py',
    '../../_base_/datasets/cityscapes_instance_labeled.py',
    '../../_base_/schedules/sgd_90k.py',
    '../../_base_/demo_runtime.py',
]
train_dataloader = dict(batch_size=1)
max_iters = 24000
train_cfg = dict(max_iters=max_iters, val_interval=4000)
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR', begin=0, end=max_iters, by_epoch=False, milestones=[21000],
        gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=4000, max_keep_ckpts=3, save_last=True))
log_processor = dict(window_size=50)

# The recipe: 8 GPUs x 1 images per iteration (global batch 8, the batch the
# learning rate belongs to). `tools/train.py --keep-global-batch` keeps it on other GPU
# counts; `--auto-scale-lr` scales the learning rate to the actual batch instead.
recipe_gpus = 8
auto_scale_lr = dict(base_batch_size=8)

# Every process seeds its global RNG with seed + rank (mmengine `diff_rank_seed`), as the
# official detectron2 runs do: Mask R-CNN's RoI sampling and Mask2Former's loss points differ
# per GPU. The data sampler then takes a seed synchronised from rank 0.
randomness = dict(seed=0, diff_rank_seed=True)
