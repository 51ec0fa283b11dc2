# PASCAL VOC 2012 instance segmentation (20 classes), labelled split only: stage-1 data.
#
# Layout:
#   data/VOCdevkit/VOC2012/{JPEGImages,SegmentationObject,SegmentationClass,ImageSets/Segmentation}
#   data/SBD/benchmark_RELEASE/dataset/{inst,cls,train.txt,val.txt}   (optional, SBD)
# COCO json (RLE masks) made by mmssis' converter:
#   # val: the 1,449 VOC 2012 segmentation val images
#   python tools/dataset_converters/voc_to_coco_instance.py \
#       --voc-root data/VOCdevkit/VOC2012 --split val \
#       --out data/VOCdevkit/VOC2012/annotations/voc12_val_instance.json
#   # trainaug: VOC 2012 seg train + SBD train/val minus VOC 2012 seg val (10,582 images)
#   python tools/dataset_converters/voc_to_coco_instance.py \
#       --voc-root data/VOCdevkit/VOC2012 --split train \
#       --sbd-root data/SBD/benchmark_RELEASE/dataset --sbd-splits train val \
#       --out data/VOCdevkit/VOC2012/annotations/voc12_trainaug_instance.json
#   python tools/misc/split_coco.py --data-root data/VOCdevkit/VOC2012 \
#       --ann-file annotations/voc12_trainaug_instance.json \
#       --out-dir data/VOCdevkit/VOC2012/semi_anns --labeled-percent 10 --fold 1
# -> semi_anns/voc12_trainaug_instance.1@10[-unlabeled].json
# (S4M does not report VOC; this protocol is mmssis'.)
dataset_type = 'CheckedCocoDataset'
data_root = 'data/VOCdevkit/VOC2012/'
backend_args = None
metainfo = dict(
    classes=('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
             'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
             'sheep', 'sofa', 'train', 'tvmonitor'),
    palette=[(106, 0, 228), (119, 11, 32), (165, 42, 42), (0, 0, 192), (197, 226, 255),
             (0, 60, 100), (0, 0, 142), (255, 77, 255), (153, 69, 1), (120, 166, 157),
             (0, 182, 199), (0, 226, 252), (182, 182, 255), (0, 0, 230), (220, 20, 60),
             (163, 255, 0), (0, 82, 0), (3, 95, 161), (0, 80, 100), (183, 130, 88)])
img_scale = (1000, 600)
labeled_ann_file = 'semi_anns/voc12_trainaug_instance.1@10.json'

geometric_transforms = [
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
]
train_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                   'flip_direction', 'homography_matrix')
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    *geometric_transforms,
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2), by_mask=True),
    # homography_matrix: stage-1 structural distillation maps SAM targets of the original
    # image into this view with it (mmdet's default meta keys leave it out).
    dict(type='PackDetInputs', meta_keys=train_meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
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
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file=labeled_ann_file,
        data_prefix=dict(img='JPEGImages/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
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
        metainfo=metainfo,
        ann_file='annotations/voc12_val_instance.json',
        data_prefix=dict(img='JPEGImages/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/voc12_val_instance.json',
    metric=['bbox', 'segm'],
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
