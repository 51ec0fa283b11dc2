# Stage 2 demo with per-class pseudo-label thresholds calibrated on labelled images
# (ConfidenceCalibrationHook) instead of the fixed score_thr=0.7 (kept as the fallback
# for classes with too few teacher detections).
# Every 100 iterations (and before the first one) the teacher predicts on 24 images of
# the labelled split, loaded with the *test* pipeline plus GT; each class gets the lowest
# threshold whose pseudo-labels reach 80 % precision (mask IoU >= 0.5), within
# [0.3, 0.95]. Note the stage-1 teacher was trained on these images, so its precision
# there is optimistic; with more labelled data, hold a slice out for calibration.
# Reliability diagrams: work_dir/calibration/reliability_iter_{N}.png (and TensorBoard).
_base_ = './semi_mask-rcnn_effnetlite0_fpn_300it_semi-0.08-demo.py'

# Read by the hook from the run's config (runner.cfg) by name.
calibration_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=_base_.dataset_type,
        data_root=_base_.data_root,
        metainfo=_base_.metainfo,
        ann_file='annotations/instances_train.1@8.json',
        data_prefix=dict(img='images/'),
        test_mode=True,
        # Resize, then LoadAnnotations: GT masks stay at ori_shape; the hook resizes
        # the teacher's img_shape masks to it.
        pipeline=_base_.test_pipeline,
        backend_args=_base_.backend_args))

custom_hooks = _base_.custom_hooks + [
    dict(
        type='ConfidenceCalibrationHook',
        dataloader='calibration_dataloader',  # the top-level entry above
        interval=100,
        max_images=24,
        target_precision=0.8,
        min_thr=0.3,
        max_thr=0.95,
        iou_thr=0.5,
        default_thr=None,  # -> model.semi_train_cfg.score_thr (0.7)
        start_iter=0,
        calibrate_at_start=True),
]
