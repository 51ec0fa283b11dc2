# Stage 1 (teacher pre-training) -- Mask R-CNN R50-FPN on a labelled PASCAL VOC 2012 split
# (10 % of VOC trainaug). mmssis protocol (S4M reports no VOC numbers): 8 GPUs x 2 images,
# SGD lr 0.02, 20k iterations, x0.1 at 15k / 18k.
_base_ = [
    '../../_base_/models/mask-rcnn_r50_fpn_voc.py',
    '../../_base_/datasets/voc_instance_labeled.py',
    '../../_base_/schedules/sgd_90k.py',
    '../../_base_/demo_runtime.py',
]
train_dataloader = dict(batch_size=2)
max_iters = 20000
train_cfg = dict(max_iters=max_iters, val_interval=4000)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
        milestones=[15000, 18000], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=4000, max_keep_ckpts=3, save_last=True))
log_processor = dict(window_size=50)

# The recipe: 8 GPUs x 2 images per iteration (global batch 16, the batch the
# learning rate belongs to). `tools/train.py --keep-global-batch` keeps it on other GPU
# counts; `--auto-scale-lr` scales the learning rate to the actual batch instead.
recipe_gpus = 8
auto_scale_lr = dict(base_batch_size=16)

# Every process seeds its global RNG with seed + rank (mmengine `diff_rank_seed`), as the
# official detectron2 runs do: Mask R-CNN's RoI sampling and Mask2Former's loss points differ
# per GPU. The data sampler then takes a seed synchronised from rank 0.
randomness = dict(seed=0, diff_rank_seed=True)
