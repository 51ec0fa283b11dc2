# Stage 1 (teacher pre-training) -- Mask2Former R50 on a labelled COCO split.
# Everything but the split lives here; `../mask2former_r50_368k_sup-{fraction}-coco.py` set the
# labelled annotation file. Hyper-parameters from the official S4M code (cvlab-kaist/S4M,
# `configs/coco/instance-segmentation/*.yaml` + `scripts/coco/train_teacher.sh`):
# AdamW 1e-4 / wd 0.05 / backbone x0.1 / clip 0.01 / AMP, 368,750 iterations, 16 images per
# iteration (official: 2 GPUs x 8; here 8 GPUs x 2, same total batch).
_base_ = [
    '../../_base_/models/mask2former_r50_coco.py',
    '../../_base_/datasets/coco_instance_labeled.py',
    '../../_base_/schedules/mask2former_adamw-amp_368k.py',
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
