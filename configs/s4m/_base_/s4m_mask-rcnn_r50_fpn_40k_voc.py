# S4M stage 2 on `gd_mask-rcnn_r50_fpn_40k_voc.py` (the semi-supervised recipe without SAM): SAM 2 Hiera-L
# pseudo-mask refinement, ARP (random scale 0.8-1.2 and uniform placement, the official COCO
# settings: the official code has no VOC run) and the student's strong augmentation applied to
# the batch after ARP. Settings and their sources: `configs/_base_/s4m_parts.py`. The teacher
# is the S4M stage-1 checkpoint (`s4m-distill_*`), given as `load_from`; it never sees mixed
# images. Batch: 4 GPUs x (3 labelled + 3 unlabelled), lr 0.015 (the `gd_` base): ARP mixes
# max(1, 3 // 4) = 1 pair, 2 of the 3 unlabelled images per GPU, as the official COCO layout.
# SAM: the `_base_` line of `configs/_base_/s4m_parts.py` (SAM 2 Hiera-L).
_base_ = ['./gd_mask-rcnn_r50_fpn_40k_voc.py', '../../_base_/s4m_parts.py']

# The student branch is geometry-only; its photometric augmentation runs on the mixed batch.
unsup_pipeline = [*_base_.unsup_pipeline[:-1], _base_.s4m_unsup_branches]
unlabeled_dataset = dict(_base_.unlabeled_dataset, pipeline=unsup_pipeline)
train_dataloader = dict(dataset=dict(datasets=[_base_.labeled_dataset, unlabeled_dataset]))
model = dict(semi_train_cfg=_base_.s4m_semi_train_cfg_dynamic)
