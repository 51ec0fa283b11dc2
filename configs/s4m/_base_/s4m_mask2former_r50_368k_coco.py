# S4M stage 2 on `gd_mask2former_r50_368k_coco.py` (the semi-supervised recipe without SAM): SAM 2 Hiera-L
# pseudo-mask refinement, ARP (random scale 0.8-1.2 and uniform placement, as the official COCO runs) and
# the student's strong augmentation applied to the batch after ARP. Settings and their
# sources: `configs/_base_/s4m_parts.py`. The teacher is the S4M stage-1 checkpoint
# (`s4m-distill_*`), given as `load_from`; it never sees mixed images.
# SAM: the `_base_` line of `configs/_base_/s4m_parts.py` (SAM 2 Hiera-L).
_base_ = ['./gd_mask2former_r50_368k_coco.py', '../../_base_/s4m_parts.py']

# The student branch is geometry-only; its photometric augmentation runs on the mixed batch.
unsup_pipeline = [*_base_.unsup_pipeline[:-1], _base_.s4m_unsup_branches]
unlabeled_dataset = dict(_base_.unlabeled_dataset, pipeline=unsup_pipeline)
train_dataloader = dict(dataset=dict(datasets=[_base_.labeled_dataset, unlabeled_dataset]))
model = dict(semi_train_cfg=_base_.s4m_semi_train_cfg_dynamic)
