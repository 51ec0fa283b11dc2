# Stage 2 (semi-supervised, no SAM) -- Mask2Former R50 teacher/student on Cityscapes, the
# Guided Distillation recipe S4M builds on. Everything but the split lives here;
# `../gd_mask2former_r50_90k_semi-{fraction}-cityscapes.py` set the annotation files.
#
# Official S4M code (`scripts/cityscapes/train_student.sh`, `config/add_cfg.py`):
# 16 labelled + 16 unlabelled images per iteration (here 4 GPUs x (4 + 4), the official layout), 90,000 poly
# iterations, AdamW 1e-4 / wd 0.05 / backbone x0.1 / clip 0.01 / AMP; teacher frozen for
# 15,000 iterations (`SSL.BURNIN_ITER` default 15000), then copied from the student and
# EMA-updated (keep rate 0.9996) every iteration; pseudo-label class threshold 0.7,
# unsupervised losses x2.0; the student is evaluated.
_base_ = [
    '../../_base_/models/mask2former_r50_cityscapes.py',
    '../../_base_/datasets/semi_cityscapes_instance.py',
    '../../_base_/schedules/mask2former_adamw-amp_poly-90k.py',
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

burn_in_iters = 15000
custom_hooks = [
    dict(type='TeacherScheduleHook', burn_in_iters=burn_in_iters, momentum=0.9996, interval=1),
    # Pseudo-label precision / recall / mIoU (teacher and SAM-refined) on 50 held-out val
    # images at every validation, logged with the val metrics (TensorBoard included).
    dict(type='PseudoLabelQualityHook', dataloader=None, max_images=50),
]
default_hooks = dict(checkpoint=dict(interval=5000))

# The recipe: 4 GPUs x 8 images per iteration (global batch 32, the batch the
# learning rate belongs to). `tools/train.py --keep-global-batch` keeps it on other GPU
# counts (the ARP check of tools/train.py then refuses fewer than 3 unlabelled images per
# GPU); `--auto-scale-lr` scales the learning rate to the actual batch instead.
recipe_gpus = 4
auto_scale_lr = dict(base_batch_size=32)

# Every process seeds its global RNG with seed + rank (mmengine `diff_rank_seed`), as the
# official detectron2 runs do: Mask R-CNN's RoI sampling and Mask2Former's loss points differ
# per GPU. The data sampler then takes a seed synchronised from rank 0.
randomness = dict(seed=0, diff_rank_seed=True)
