# Iteration-based SGD schedule for Mask R-CNN (mmdet's `ms-90k` COCO recipe): lr 0.02 for
# 16 images per iteration, momentum 0.9, weight decay 1e-4, 500-iteration linear warm-up,
# x0.1 steps at 60k / 80k of 90k. Not from the S4M paper (it reports Mask2Former only);
# the s4m Mask R-CNN configs override `max_iters` / milestones per dataset and stage.
max_iters = 90000
val_interval = 5000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[60000, 80000],
        gamma=0.1)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)
