# Stage 1 (teacher pre-training) -- Mask R-CNN R50-FPN on a labelled COCO split, same data
# protocol as the Mask2Former configs (large-scale jitter, `semi_anns` splits).
# S4M reports Mask2Former only; the Mask R-CNN schedule is MMDetection's iteration-based
# SGD recipe (`ms-90k`): 16 images per iteration (8 GPUs x 2), lr 0.02, 90k iterations.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../../_base_/datasets/coco_instance_labeled.py',
    '../../_base_/schedules/sgd_90k.py',
    '../../_base_/demo_runtime.py',
]
train_dataloader = dict(batch_size=2)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=5000, max_keep_ckpts=3, save_last=True))
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
