# COCO instance segmentation, labelled split only: the stage-1 (teacher pre-training) data of
# the two-stage semi-supervised schedule.
#
# Splits follow MMDetection's semi-supervised naming (``semi_coco_detection.py``):
#   data/coco/semi_anns/instances_train2017.{fold}@{percent}.json            labelled
#   data/coco/semi_anns/instances_train2017.{fold}@{percent}-unlabeled.json  the rest
# made by
#   python tools/misc/split_coco.py --data-root data/coco \
#       --ann-file annotations/instances_train2017.json \
#       --out-dir data/coco/semi_anns --labeled-percent 1 2 5 10 --fold 1
# Layout:  data/coco/{train2017,val2017}/*.jpg  data/coco/annotations/instances_val2017.json
#
# Training augmentation: large-scale jitter as in Mask2Former / Guided Distillation / S4M
# (detectron2 `coco_instance_lsj`: flip, resize to 0.1-2.0 x 1024, 1024 x 1024 crop; the
# model's BatchFixedSizePad pads every image to 1024 x 1024). Test: shorter side 800,
# longer <= 1333 (detectron2 MIN_SIZE_TEST / MAX_SIZE_TEST defaults).
dataset_type = 'CheckedCocoDataset'
data_root = 'data/coco/'
backend_args = None
image_size = (1024, 1024)
labeled_ann_file = 'semi_anns/instances_train2017.1@10.json'

lsj_transforms = [
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomResize',
        scale=image_size,
        ratio_range=(0.1, 2.0),
        resize_type='Resize',
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_size=image_size,
        crop_type='absolute',
        recompute_bbox=True,
        allow_negative_crop=True),
]
train_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                   'flip_direction', 'homography_matrix')
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    *lsj_transforms,
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    # homography_matrix: stage-1 structural distillation maps SAM targets of the original
    # image into this view with it (mmdet's default meta keys leave it out).
    dict(type='PackDetInputs', meta_keys=train_meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]

train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=labeled_ann_file,
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric=['bbox', 'segm'],
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
