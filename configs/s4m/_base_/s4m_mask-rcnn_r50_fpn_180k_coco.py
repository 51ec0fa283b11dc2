# S4M stage 2 on `semi_mask-rcnn_r50_fpn_180k_coco.py` (the semi-supervised recipe without SAM): SAM 2 Hiera-L
# pseudo-mask refinement, ARP (random scale 0.8-1.2 and uniform placement, as the official COCO runs) and
# the student's strong augmentation applied to the batch after ARP. Settings and their
# sources: `configs/_base_/s4m_parts.py`. The teacher is the S4M stage-1 checkpoint
# (`s4m-distill_*`), given as `load_from`; it never sees mixed images.
# Swap SAM by replacing the `sam/` entry below (e.g. `../../_base_/sam/sam_vit_h.py`).
_base_ = ['./semi_mask-rcnn_r50_fpn_180k_coco.py', '../../_base_/sam/sam2_hiera_l.py', '../../_base_/s4m_parts.py']

# The student branch is geometry-only (it shares the teacher's view); its strong
# photometric augmentation runs on the mixed batch (`student_augment`).
unsup_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=_base_.backend_args),
    dict(type='LoadEmptyAnnotations', with_bbox=True, with_mask=True),
    *_base_.lsj_transforms,
    dict(type='MultiBranch', branch_field=_base_.branch_field,
         unsup_teacher=[dict(type='PackDetInputs', meta_keys=_base_.meta_keys)],
         unsup_student=[dict(type='PackDetInputs', meta_keys=_base_.meta_keys)]),
]
unlabeled_dataset = dict(_base_.unlabeled_dataset, pipeline=unsup_pipeline)
train_dataloader = dict(dataset=dict(datasets=[_base_.labeled_dataset, unlabeled_dataset]))

model = dict(
    semi_train_cfg=dict(
        sam_refiner=dict(
            _base_.s4m_refiner,
            _delete_=True,
            refiner=dict(_base_.s4m_refiner.refiner, backend=_base_.sam_backend)),
        instance_mixer=dict(_base_.s4m_arp_dynamic, _delete_=True),
        student_augment=_base_.s4m_student_augment))
