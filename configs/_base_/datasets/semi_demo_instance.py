# Semi-supervised demo data: labelled 8 % split + the unlabelled rest of train, val with GT.
# Unlabelled images get one shared geometric augmentation (resize + flip) *before* the
# branches split, so teacher and student views differ only photometrically, as in S4M.
# (Independent geometry per branch also works: pseudo-masks are warped with the views'
# homography matrices; see docs.)
_base_ = './demo_instance.py'

color_space = [
    [dict(type='ColorTransform')],
    [dict(type='AutoContrast')],
    [dict(type='Equalize')],
    [dict(type='Sharpness')],
    [dict(type='Posterize')],
    [dict(type='Solarize')],
    [dict(type='Color')],
    [dict(type='Contrast')],
    [dict(type='Brightness')],
]
branch_field = ['sup', 'unsup_teacher', 'unsup_student']
meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
             'flip_direction', 'homography_matrix')

sup_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale={{_base_.img_scale}}, ratio_range=(0.8, 1.25),
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    # No photometric augmentation on the labelled branch: it is the supervised baseline's
    # pipeline, so the semi student sees the labelled images exactly as the baseline does.
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2), by_mask=True),
    dict(type='MultiBranch', branch_field=branch_field,
         sup=dict(type='PackDetInputs', meta_keys=meta_keys)),
]
weak_pipeline = [dict(type='PackDetInputs', meta_keys=meta_keys)]
strong_pipeline = [
    dict(type='RandAugment', aug_space=color_space, aug_num=2),
    dict(type='PackDetInputs', meta_keys=meta_keys),
]
unsup_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadEmptyAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale={{_base_.img_scale}}, ratio_range=(0.8, 1.25),
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='MultiBranch', branch_field=branch_field,
         unsup_teacher=weak_pipeline, unsup_student=strong_pipeline),
]

labeled_dataset = dict(
    type={{_base_.dataset_type}},
    data_root={{_base_.data_root}},
    metainfo={{_base_.metainfo}},
    ann_file='annotations/instances_train.1@8.json',
    data_prefix=dict(img='images/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=8),
    pipeline=sup_pipeline)
unlabeled_dataset = dict(
    type={{_base_.dataset_type}},
    data_root={{_base_.data_root}},
    metainfo={{_base_.metainfo}},
    ann_file='annotations/instances_train.1@8-unlabeled.json',
    data_prefix=dict(img='images/'),
    filter_cfg=dict(filter_empty_gt=False),
    # The first 100 of the 276 unlabelled images (mmengine's `indices`): SAM encodes each
    # image of the pool once (~1.9 s for LiteMedSAM on one CPU thread), and 150 steps of 2
    # unlabelled images see each image of the pool 3 times. Remove it to use them all.
    indices=100,
    pipeline=unsup_pipeline)

batch_size = 4
train_dataloader = dict(
    _delete_=True,
    batch_size=batch_size,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='GroupMultiSourceSampler', batch_size=batch_size, source_ratio=[2, 2]),
    dataset=dict(type='ConcatDataset', datasets=[labeled_dataset, unlabeled_dataset]))

# Confidence calibration on the demo (read by ConfidenceCalibrationHook by name from the
# run's config): the labelled split with the *test* pipeline plus GT (Resize, then
# LoadAnnotations: GT masks stay at ori_shape). The stage-1 teacher was trained on these
# images, so its precision there is optimistic; with more labelled data, hold a slice out.
calibration_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type={{_base_.dataset_type}},
        data_root={{_base_.data_root}},
        metainfo={{_base_.metainfo}},
        ann_file='annotations/instances_train.1@8.json',
        data_prefix=dict(img='images/'),
        test_mode=True,
        pipeline={{_base_.test_pipeline}},
        backend_args={{_base_.backend_args}}))
# Every 100 iterations (and before the first one) the teacher predicts on 24 labelled
# images; each class gets the lowest threshold whose pseudo-labels reach 80 % precision
# (mask IoU >= 0.5), within [0.3, 0.95]; classes with too few detections keep
# model.semi_train_cfg.score_thr. Add it with `custom_hooks = _base_.custom_hooks +
# [_base_.demo_calibration_hook]`.
demo_calibration_hook = dict(
    type='ConfidenceCalibrationHook', dataloader='calibration_dataloader', interval=100,
    max_images=24, target_precision=0.8, min_thr=0.3, max_thr=0.95, iou_thr=0.5,
    default_thr=None, start_iter=0, calibrate_at_start=True)

# SAM's benefit per class on the same slice (SamBenefitHook): at the same iterations the
# teacher's kept pseudo-masks are refined by the configured SAM and both are scored against
# GT; with the refiner's policy='measured' a class is refined only where the gain in mask
# IoU exceeds 1.64 standard errors of its per-instance gains (>= 5 matched instances; fewer:
# not refined). Add it after the calibration hook (it measures with the new thresholds).
demo_sam_benefit_hook = dict(
    type='SamBenefitHook', dataloader='calibration_dataloader', interval=100,
    max_images=24, iou_thr=0.5, z=1.64, min_support=5, refine_undecided=False,
    start_iter=0, measure_at_start=True)
