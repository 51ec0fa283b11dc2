# Stage 2 (semi-supervised, no SAM) -- Mask2Former R50 teacher/student on COCO, the Guided
# Distillation recipe S4M builds on. Everything but the split lives here;
# `../gd_mask2former_r50_368k_semi-{fraction}-coco.py` set the annotation files, and the S4M
# variants inherit those and switch on SAM refinement / ARP / distillation.
#
# Official S4M code (cvlab-kaist/S4M: `scripts/coco/train_student.sh`, `config/add_cfg.py`,
# `mask2former/maskformer_model.py`):
# * 12 labelled + 12 unlabelled images per iteration (here 4 GPUs x (3 + 3)), 368,750 iters,
#   AdamW 1e-4 / wd 0.05 / backbone x0.1 / clip 0.01 / AMP (see the schedule base);
# * teacher = stage-1 checkpoint (`load_from`, fills the teacher only; the student starts from
#   ImageNet), frozen for the first 25,000 iterations (`SSL.BURNIN_ITER 25000`), then
#   replaced by the student and EMA-updated with keep rate 0.9996 (`SSL.EMA_DECAY`) every
#   iteration (`SSL.FREQ 1`);
# * pseudo-labels: queries whose non-background class probability > 0.7 (`thresh_class`),
#   masks sigmoid > 0.5, tiny masks dropped; unsupervised losses x2.0; evaluation of the
#   student (`SSL.EVAL_WHO STUDENT`).
_base_ = [
    '../../_base_/models/mask2former_r50_coco.py',
    '../../_base_/datasets/semi_coco_instance.py',
    '../../_base_/schedules/mask2former_adamw-amp_368k.py',
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

burn_in_iters = 25000
custom_hooks = [
    dict(type='TeacherScheduleHook', burn_in_iters=burn_in_iters, momentum=0.9996, interval=1),
    # Pseudo-label precision / recall / mIoU (teacher and SAM-refined) on 50 held-out val
    # images at every validation, logged with the val metrics (TensorBoard included).
    dict(type='PseudoLabelQualityHook', dataloader=None, max_images=50),
]
val_interval = 7000  # official CHECKPOINT_PERIOD / EVAL_PERIOD for the COCO student
train_cfg = dict(val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))

# The recipe: 4 GPUs x 6 images per iteration (global batch 24, the batch the
# learning rate belongs to). `tools/train.py --keep-global-batch` keeps it on other GPU
# counts; `--auto-scale-lr` scales the learning rate to the actual batch instead.
recipe_gpus = 4
auto_scale_lr = dict(base_batch_size=24)

# Every process seeds its global RNG with seed + rank (mmengine `diff_rank_seed`), as the
# official detectron2 runs do: Mask R-CNN's RoI sampling and Mask2Former's loss points differ
# per GPU. The data sampler then takes a seed synchronised from rank 0.
randomness = dict(seed=0, diff_rank_seed=True)
