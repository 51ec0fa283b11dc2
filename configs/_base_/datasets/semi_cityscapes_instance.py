# Semi-supervised Cityscapes instance segmentation: fixed S4M labelled list + the unlabelled
# rest of the 2,975 train images (stage 2), val with GT. Layout, json conversion and split
# commands: see `cityscapes_instance_labeled.py`. Guided Distillation / S4M use *all* train
# images as unlabelled data; to follow them exactly set
# `unlabeled_dataset.ann_file='annotations/instancesonly_filtered_gtFine_train.json'`
# (its annotations are never read: the unlabelled pipeline loads empty annotations).
#
# Augmentation, as the official `MaskFormerImageDatasetMapper`: geometry (multi-scale resize,
# 512 x 1024 crop, flip) and the SSD colour jitter are applied ONCE before the branches split
# (the teacher's weak view); the student view adds SimCLR-style colour jitter (p=0.8) and
# grayscale (p=0.2). Hue jitter and Gaussian blur of the official strong view have no
# MMDetection/MMCV transform and are left out.
_base_ = './cityscapes_instance_labeled.py'

branch_field = ['sup', 'unsup_teacher', 'unsup_student']
meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
             'flip_direction', 'homography_matrix')
strong_photometric = [
    dict(
        type='RandomApply',
        prob=0.8,
        transforms=[
            dict(
                type='RandomOrder',
                transforms=[
                    dict(type='Brightness', prob=1.0, min_mag=0.6, max_mag=1.4),
                    dict(type='Contrast', prob=1.0, min_mag=0.6, max_mag=1.4),
                    dict(type='Color', prob=1.0, min_mag=0.6, max_mag=1.4),
                ])
        ]),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True),
]

sup_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    *_base_.geometric_transforms,
    _base_.color_aug_ssd,
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='MultiBranch', branch_field=branch_field,
         sup=dict(type='PackDetInputs', meta_keys=meta_keys)),
]
weak_pipeline = [dict(type='PackDetInputs', meta_keys=meta_keys)]
strong_pipeline = [*strong_photometric, dict(type='PackDetInputs', meta_keys=meta_keys)]
unsup_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args={{_base_.backend_args}}),
    dict(type='LoadEmptyAnnotations', with_bbox=True, with_mask=True),
    *_base_.geometric_transforms,
    _base_.color_aug_ssd,
    dict(type='MultiBranch', branch_field=branch_field,
         unsup_teacher=weak_pipeline, unsup_student=strong_pipeline),
]

labeled_dataset = dict(
    type={{_base_.dataset_type}},
    data_root={{_base_.data_root}},
    metainfo={{_base_.metainfo}},
    ann_file='semi_anns/instancesonly_filtered_gtFine_train.perc_10.json',
    data_prefix=dict(img='leftImg8bit/train/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    pipeline=sup_pipeline,
    backend_args={{_base_.backend_args}})
unlabeled_dataset = dict(
    type={{_base_.dataset_type}},
    data_root={{_base_.data_root}},
    metainfo={{_base_.metainfo}},
    ann_file='semi_anns/instancesonly_filtered_gtFine_train.perc_10-unlabeled.json',
    data_prefix=dict(img='leftImg8bit/train/'),
    filter_cfg=dict(filter_empty_gt=False),
    pipeline=unsup_pipeline,
    backend_args={{_base_.backend_args}})

# S4M / Guided Distillation Cityscapes stage 2: 16 labelled + 16 unlabelled images per
# iteration (`scripts/cityscapes/train_student.sh`: SOLVER.IMS_PER_BATCH 16 for each loader),
# on 4 GPUs x (4 + 4) as the official run: the per-GPU unlabelled batch decides what ARP
# does (max(1, B // 4) pairs: 2 of the 4 images per GPU are mixed).
batch_size = 8
source_ratio = [4, 4]
train_dataloader = dict(
    _delete_=True,
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='GroupMultiSourceSampler', batch_size=batch_size,
                 source_ratio=source_ratio),
    dataset=dict(type='ConcatDataset', datasets=[labeled_dataset, unlabeled_dataset]))
