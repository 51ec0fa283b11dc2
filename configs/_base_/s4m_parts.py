# The S4M parts, as the official code (cvlab-kaist/S4M) runs them, for the paper configs.
# The SAM of every paper config is the one base below: SAM 2 Hiera-L, as the official code.
# One line switches all of them: e.g. './sam/sam2.1_hiera_l.py' or './sam/sam_vit_h.py'.
# Sources: `modules/train_loop.py` (stage-1 distillation targets, stage-2 refinement, the
# order teacher -> SAM -> ARP -> student), `modules/augmentation.py` (ARP, strong
# augmentation), `mask2former/modeling/criterion.py` (`loss_dec_cossim_v1`: smooth-L1,
# beta 1), `config/add_cfg.py` (`NUM_POINTS 3`, `AUG_STATIC`).

_base_ = './sam/sam2_hiera_l.py'

# Stage 1: structural distillation. 128 query points per labelled image (64 on the union of
# the GT masks, the rest uniform: `extract_point_gt_rand(num_samples=128)`), drawn anew every
# iteration on the augmented view that the detector sees; SAM is prompted with each point
# and its decoder image tokens after the last two-way block give the target
# self-similarity rows; the detector side is the pixel decoder's mask features (Mask2Former)
# or the finest FPN level (Mask R-CNN); smooth-L1 with beta 1, weight 1.
s4m_distill = dict(
    type='mmssis.SamStructuralDistiller',
    num_inside=64,
    num_uniform=64,
    loss_weight=1.0,
    beta=1.0,
    sam_input='view',
    cache_targets=False,
    prompts_per_call=128,
    sam=_base_.sam_backend)

# Stage 2: SAM refinement of every kept teacher pseudo-mask. 3 positive points drawn
# without replacement from the softmax over *all* pixels of the query's mask-logit map,
# SAM on the teacher's (weak) view as the official code gives it (the whole padded canvas at
# native scale: COCO's 1024 x 1024 LSJ canvas, padding included), multimask output, the
# mask with the highest predicted IoU replaces the teacher's unconditionally (no gate; an
# empty SAM mask replaces it too and no refined mask is dropped for its area). Teacher and
# SAM run in fp32 outside AMP's autocast (SemiMaskDetector), as officially.
s4m_refiner = dict(
    type='mmssis.SamMaskRefiner',
    embed_on='view',
    view_extent='canvas',
    num_points=3,
    point_region='all',
    use_box=False,
    multimask=True,
    iou_thr=None,
    min_teacher_iou=None,
    fusion='replace',
    empty_fallback=False,
    seed=0,
    backend=_base_.sam_backend)

# ARP: max(1, B // 4) image pairs of the unlabelled student batch per GPU swap every
# pseudo-instance of area >= 3000 px, both ways (the recipes give B = 3 on COCO, 4 on
# Cityscapes: tools/train.py refuses a layout on which ARP is a no-op or mixes everything).
# COCO (`AUG_STATIC False`): random scale 0.8-1.2 and uniform random placement; Cityscapes
# (`AUG_STATIC True`, the default): same scale and position. Instances are pasted in the
# teacher's instance order (a later one on top) and every mask of an image that receives
# instances becomes mutually exclusive; only masks left empty are dropped.
s4m_arp_dynamic = dict(
    type='mmssis.ARPInstanceMixer',
    num_pairs=None,
    min_area=3000,
    scale_range=(0.8, 1.2),
    placement='uniform',
    paste_order='instance',
    occlusion='exclusive',
    min_kept_area=1,
    prob=1.0,
    seed=0)
s4m_arp_static = dict(s4m_arp_dynamic, placement='static')

# Every seeded part above draws its own stream per GPU, step and image, derived from
# (seed, part, step, rank, image) (mmssis.utils.rank_seed): nothing to save for --resume.

# The student's strong augmentation, after ARP (`StrongAugmentation`): ColorJitter(0.4, 0.4,
# 0.4, 0.1) with p 0.8, grayscale p 0.2, Gaussian blur sigma 0.1-2 with p 0.5. The student
# branch of the data pipeline is geometry-only in the S4M configs.
s4m_student_augment = dict(
    type='mmssis.StudentPhotometricAugment',
    brightness=0.4,
    contrast=0.4,
    saturation=0.4,
    hue=0.1,
    jitter_prob=0.8,
    grayscale_prob=0.2,
    blur_prob=0.5,
    blur_sigma=(0.1, 2.0),
    seed=0)

# The stage-2 S4M switches, as `model.semi_train_cfg` of an `s4m_*` config (the `gd_*`
# base has them off).
s4m_semi_train_cfg_dynamic = dict(
    sam_refiner=dict(s4m_refiner, _delete_=True),
    instance_mixer=dict(s4m_arp_dynamic, _delete_=True),
    student_augment=s4m_student_augment)
s4m_semi_train_cfg_static = dict(s4m_semi_train_cfg_dynamic,
                                 instance_mixer=dict(s4m_arp_static, _delete_=True))

# The unlabelled pipeline's last step in the S4M configs: the student branch is
# geometry-only (the same view as the teacher's); its strong augmentation follows ARP.
s4m_pack_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                 'flip_direction', 'homography_matrix')
s4m_unsup_branches = dict(
    type='MultiBranch',
    branch_field=['sup', 'unsup_teacher', 'unsup_student'],
    unsup_teacher=[dict(type='PackDetInputs', meta_keys=s4m_pack_keys)],
    unsup_student=[dict(type='PackDetInputs', meta_keys=s4m_pack_keys)])
