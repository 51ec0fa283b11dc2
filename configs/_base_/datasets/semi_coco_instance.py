# Semi-supervised COCO instance segmentation: labelled split + the unlabelled rest of
# train2017 (stage 2 of the two-stage schedule), val2017 with GT.
#
# Splits follow MMDetection's semi-supervised naming (``semi_coco_detection.py``):
#   data/coco/semi_anns/instances_train2017.{fold}@{percent}.json            labelled
#   data/coco/semi_anns/instances_train2017.{fold}@{percent}-unlabeled.json  the rest
# (see `coco_instance_labeled.py` for the split command). Guided Distillation / S4M use *all*
# train2017 images as unlabelled data; to follow them exactly set
# `unlabeled_dataset.ann_file='annotations/instances_train2017.json'` (its annotations are
# never read: the unlabelled pipeline loads empty annotations).
#
# Augmentation, S4M / Guided Distillation style (`ImageDatasetMapper` of the official code):
# * every image: large-scale jitter (flip, resize 0.1-2.0 x 1024, 1024 x 1024 crop);
# * unlabelled images: the jitter is applied ONCE, before the branches split, so the teacher
#   (`unsup_teacher`, weak view: geometry only) and the student (`unsup_student`) see the same
#   geometry; the student view adds photometric noise only (SimCLR-style colour jitter with
#   p=0.8 -- brightness/contrast/saturation 0.6-1.4 in random order -- and grayscale with
#   p=0.2). The official strong view also has hue jitter 0.1 and a Gaussian blur
#   (sigma 0.1-2, p=0.5); MMDetection/MMCV have no transform for those two, so they are left
#   out here. Pseudo-masks are still warped with the views' homography matrices, so adding
#   per-branch geometry later works too.
_base_ = './coco_instance_labeled.py'

branch_field = ['sup', 'unsup_teacher', 'unsup_student']
meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
             'flip_direction', 'homography_matrix')

# Student-only photometric noise (a stand-in for torchvision ColorJitter(0.4, 0.4, 0.4, 0.1)
# with p=0.8 + RandomGrayscale(p=0.2)).
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
    *_base_.lsj_transforms,
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='MultiBranch', branch_field=branch_field,
         sup=dict(type='PackDetInputs', meta_keys=meta_keys)),
]
weak_pipeline = [dict(type='PackDetInputs', meta_keys=meta_keys)]
strong_pipeline = [*strong_photometric, dict(type='PackDetInputs', meta_keys=meta_keys)]
unsup_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args={{_base_.backend_args}}),
    dict(type='LoadEmptyAnnotations', with_bbox=True, with_mask=True),
    *_base_.lsj_transforms,
    dict(type='MultiBranch', branch_field=branch_field,
         unsup_teacher=weak_pipeline, unsup_student=strong_pipeline),
]

labeled_dataset = dict(
    type={{_base_.dataset_type}},
    data_root={{_base_.data_root}},
    ann_file='semi_anns/instances_train2017.1@10.json',
    data_prefix=dict(img='train2017/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    pipeline=sup_pipeline,
    backend_args={{_base_.backend_args}})
unlabeled_dataset = dict(
    type={{_base_.dataset_type}},
    data_root={{_base_.data_root}},
    ann_file='semi_anns/instances_train2017.1@10-unlabeled.json',
    data_prefix=dict(img='train2017/'),
    filter_cfg=dict(filter_empty_gt=False),
    pipeline=unsup_pipeline,
    backend_args={{_base_.backend_args}})

# S4M / Guided Distillation COCO stage 2: 12 labelled + 12 unlabelled images per iteration
# (`scripts/coco/train_student.sh`: SOLVER.IMS_PER_BATCH 12 for each of the two loaders),
# i.e. 4 GPUs x (3 + 3). `source_ratio` is per GPU and must sum to `batch_size`
# (see mmssis.utils.sampler_check.check_semi_sampler).
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
