# Semi-supervised PASCAL VOC 2012 instance segmentation: labelled split of VOC trainaug + the
# unlabelled rest (stage 2), VOC 2012 seg val with GT. Layout and conversion commands: see
# `voc_instance_labeled.py`. Same recipe as the COCO / Cityscapes semi bases: geometry applied
# once before the branch split, student-only photometric noise.
_base_ = './voc_instance_labeled.py'

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
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    *_base_.geometric_transforms,
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2), by_mask=True),
    dict(type='MultiBranch', branch_field=branch_field,
         sup=dict(type='PackDetInputs', meta_keys=meta_keys)),
]
weak_pipeline = [dict(type='PackDetInputs', meta_keys=meta_keys)]
strong_pipeline = [*strong_photometric, dict(type='PackDetInputs', meta_keys=meta_keys)]
unsup_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadEmptyAnnotations', with_bbox=True, with_mask=True),
    *_base_.geometric_transforms,
    dict(type='MultiBranch', branch_field=branch_field,
         unsup_teacher=weak_pipeline, unsup_student=strong_pipeline),
]

labeled_dataset = dict(
    type={{_base_.dataset_type}},
    data_root={{_base_.data_root}},
    metainfo={{_base_.metainfo}},
    ann_file='semi_anns/voc12_trainaug_instance.1@10.json',
    data_prefix=dict(img='JPEGImages/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=8),
    pipeline=sup_pipeline,
    backend_args={{_base_.backend_args}})
unlabeled_dataset = dict(
    type={{_base_.dataset_type}},
    data_root={{_base_.data_root}},
    metainfo={{_base_.metainfo}},
    ann_file='semi_anns/voc12_trainaug_instance.1@10-unlabeled.json',
    data_prefix=dict(img='JPEGImages/'),
    filter_cfg=dict(filter_empty_gt=False),
    pipeline=unsup_pipeline,
    backend_args={{_base_.backend_args}})

# Per GPU 3 labelled + 3 unlabelled images (`source_ratio` is per GPU and must sum to
# `batch_size`), the per-GPU layout of the official S4M COCO runs: ARP mixes
# max(1, 3 // 4) = 1 pair, i.e. 2 of the 3 unlabelled images per GPU. The GPU count and the
# learning rate are the schedule's (configs/s4m/_base_/gd_mask-rcnn_r50_fpn_40k_voc.py).
batch_size = 6
source_ratio = [3, 3]
train_dataloader = dict(
    _delete_=True,
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='GroupMultiSourceSampler', batch_size=batch_size,
                 source_ratio=source_ratio),
    dataset=dict(type='ConcatDataset', datasets=[labeled_dataset, unlabeled_dataset]))
