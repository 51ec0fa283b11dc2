# Cityscapes instance segmentation (8 thing classes), labelled split only: stage-1 data.
#
# Folder layout (the official Cityscapes download, gtFine_trainvaltest + leftImg8bit_trainvaltest):
#   data/cityscapes/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
#   data/cityscapes/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png
#       (+ _labelIds.png, _polygons.json)
# COCO-style instance json, made with MMDetection's cityscapesscripts-based converter
# (`pip install cityscapesscripts`; the script ships with mmdet in `mmdet/.mim/tools`):
#   mim run mmdet cityscapes data/cityscapes --nproc 8 --out-dir data/cityscapes/annotations
#   # or: python <mmdet>/.mim/tools/dataset_converters/cityscapes.py data/cityscapes \
#   #         --nproc 8 --out-dir data/cityscapes/annotations
# which writes annotations/instancesonly_filtered_gtFine_{train,val,test}.json (RLE masks,
# category ids = Cityscapes label ids 24-33 of the 8 classes below; crowd regions iscrowd=1).
# Labelled/unlabelled splits from the fixed S4M / Guided Distillation lists
# (data_splits/cityscapes/perc_{5,10,20,30}.txt of cvlab-kaist/S4M, shipped in
# data_splits/cityscapes/):
#   python tools/misc/split_coco.py --data-root data/cityscapes \
#       --ann-file annotations/instancesonly_filtered_gtFine_train.json \
#       --out-dir data/cityscapes/semi_anns \
#       --labeled-list data_splits/cityscapes/perc_{5,10,20,30}.txt
# -> semi_anns/instancesonly_filtered_gtFine_train.perc_{5,...}[-unlabeled].json
#
# Training augmentation, as the official `mask_former_instance` mapper: shorter side drawn
# from {512, 614, ..., 2048} (longer side <= 4096), 512 x 1024 crop, flip, SSD-style colour
# jitter (detectron2 ColorAugSSDTransform ~ mmdet PhotoMetricDistortion, which also swaps
# channels with p=0.5). Test: 1024 x 2048 (MIN_SIZE_TEST 1024, MAX_SIZE_TEST 2048).
dataset_type = 'CheckedCocoDataset'
data_root = 'data/cityscapes/'
backend_args = None
metainfo = dict(
    classes=('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle'),
    palette=[(220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
             (0, 80, 100), (0, 0, 230), (119, 11, 32)])
crop_size = (1024, 512)  # mmdet RandomCrop takes (w, h): 512 high x 1024 wide
labeled_ann_file = 'semi_anns/instancesonly_filtered_gtFine_train.perc_10.json'

geometric_transforms = [
    dict(
        type='RandomChoiceResize',
        scales=[(4096, int(x * 0.1 * 1024)) for x in range(5, 21)],
        resize_type='Resize',
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_size=crop_size,
        crop_type='absolute',
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
]
color_aug_ssd = dict(type='PhotoMetricDistortion')
train_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                   'flip_direction', 'homography_matrix')
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    *geometric_transforms,
    color_aug_ssd,
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    # homography_matrix: stage-1 structural distillation maps SAM targets of the original
    # image into this view with it (mmdet's default meta keys leave it out).
    dict(type='PackDetInputs', meta_keys=train_meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
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
        metainfo=metainfo,
        ann_file=labeled_ann_file,
        data_prefix=dict(img='leftImg8bit/train/'),
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
        metainfo=metainfo,
        ann_file='annotations/instancesonly_filtered_gtFine_val.json',
        data_prefix=dict(img='leftImg8bit/val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# The paper's Cityscapes AP is the official Cityscapes instance metric (detectron2's
# CityscapesInstanceEvaluator), i.e. mmdet's CityScapesMetric (needs `cityscapesscripts`);
# COCO-style AP is logged beside it.
val_evaluator = [
    dict(
        type='CocoMetric',
        ann_file=data_root + 'annotations/instancesonly_filtered_gtFine_val.json',
        metric=['bbox', 'segm'],
        backend_args=backend_args),
    dict(
        type='CityScapesMetric',
        seg_prefix=data_root + 'gtFine/val',
        outfile_prefix='./work_dirs/cityscapes_metric/instance',
        backend_args=backend_args),
]
test_evaluator = val_evaluator
