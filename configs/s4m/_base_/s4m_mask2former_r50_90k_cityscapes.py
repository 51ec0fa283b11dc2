# S4M stage 2 on `gd_mask2former_r50_90k_cityscapes.py` (the semi-supervised recipe without SAM): SAM 2 Hiera-L
# pseudo-mask refinement, ARP (static placement, as the official Cityscapes runs) and
# the student's strong augmentation applied to the batch after ARP. Settings and their
# sources: `configs/_base_/s4m_parts.py`. The teacher is the S4M stage-1 checkpoint
# (`s4m-distill_*`), given as `load_from`; it never sees mixed images.
# SAM: the `_base_` line of `configs/_base_/s4m_parts.py` (SAM 2 Hiera-L).
_base_ = ['./gd_mask2former_r50_90k_cityscapes.py', '../../_base_/s4m_parts.py']

# The student branch is geometry-only; its photometric augmentation runs on the mixed batch.
# The official unlabelled sample carries two views of one geometry: the teacher's (SSD colour
# jitter, `MaskFormerImageDatasetMapper`) and `image_wo_weak`, geometry only, which ARP and the
# strong augmentation act on. So the colour jitter moves into the teacher branch here.
s4m_cityscapes_branches = dict(
    _base_.s4m_unsup_branches,
    unsup_teacher=[_base_.color_aug_ssd,
                   dict(type='PackDetInputs', meta_keys=_base_.s4m_pack_keys)])
unsup_pipeline = [*_base_.unsup_pipeline[:2], *_base_.geometric_transforms,
                  s4m_cityscapes_branches]
unlabeled_dataset = dict(_base_.unlabeled_dataset, pipeline=unsup_pipeline)
train_dataloader = dict(dataset=dict(datasets=[_base_.labeled_dataset, unlabeled_dataset]))
model = dict(semi_train_cfg=_base_.s4m_semi_train_cfg_static)
