# Full S4M stage 2 on the demo data: SAM pseudo-mask refinement + ARP instance mixing +
# per-class confidence calibration (mmssis' addition; S4M uses a fixed 0.7 threshold).
_base_ = './s4m-arp_mask-rcnn_effnetlite0_fpn_300it_semi-0.08-demo.py'

# The labelled split (the stage-1 teacher was trained on it, so measured precision is
# optimistic; a held-out labelled slice is better when there is one).
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
        pipeline=_base_.test_pipeline,
        backend_args=_base_.backend_args))

custom_hooks = _base_.custom_hooks + [
    dict(type='ConfidenceCalibrationHook', dataloader='calibration_dataloader', interval=100,
         max_images=24, target_precision=0.8, min_thr=0.3, max_thr=0.95, iou_thr=0.5,
         calibrate_at_start=True),
]
