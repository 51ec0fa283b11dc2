# Stage 1 (teacher pre-training) -- Mask2Former R50 on a labelled Cityscapes split.
# Everything but the split lives here; `../mask2former_r50_90k_sup-{fraction}-cityscapes.py`
# set the labelled annotation file. Official S4M code (`scripts/cityscapes/train_teacher.sh`,
# `Base-Cityscapes-InstanceSegmentation.yaml`): 4 images per iteration (2 GPUs x 2), AdamW
# 1e-4 / wd 0.05 / backbone x0.1 / clip 0.01 / AMP, 90,000 iterations of poly decay.
_base_ = [
    '../../_base_/models/mask2former_r50_cityscapes.py',
    '../../_base_/datasets/cityscapes_instance_labeled.py',
    '../../_base_/schedules/mask2former_adamw-amp_poly-90k.py',
    '../../_base_/demo_runtime.py',
]
train_dataloader = dict(batch_size=2)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=5000, max_keep_ckpts=3, save_last=True))
log_processor = dict(window_size=50)

# The recipe: 2 GPUs x 2 images per iteration (global batch 4, the batch the
# learning rate belongs to). `tools/train.py --keep-global-batch` keeps it on other GPU
# counts; `--auto-scale-lr` scales the learning rate to the actual batch instead.
recipe_gpus = 2
auto_scale_lr = dict(base_batch_size=4)

# Every process seeds its global RNG with seed + rank (mmengine `diff_rank_seed`), as the
# official detectron2 runs do: Mask R-CNN's RoI sampling and Mask2Former's loss points differ
# per GPU. The data sampler then takes a seed synchronised from rank 0.
randomness = dict(seed=0, diff_rank_seed=True)
