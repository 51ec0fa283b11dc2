# Mask2Former / Guided Distillation / S4M COCO schedule (detectron2
# `Base-COCO-InstanceSegmentation.yaml` of the official S4M code, cvlab-kaist/S4M):
# AdamW lr 1e-4, weight decay 0.05 (none on norms and query/level embeddings), backbone lr x0.1,
# full-model gradient clipping at L2 norm 0.01 (detectron2 CLIP_TYPE 'full_model',
# CLIP_VALUE 0.01), mixed precision, 368,750 iterations with x0.1 steps at 327,778 / 355,092
# (detectron2's 10-iteration warm-up uses factor 1.0, i.e. none). The official scripts keep
# these values for both stages (teacher pre-training and semi-supervised student training).
# Batch size (16 images for stage 1; 12 labelled + 12 unlabelled for stage 2) is set by the
# data configs; `auto_scale_lr` is off, as in detectron2.
# `AmpOptimWrapper` needs a GPU (mmengine); on a CPU run override
# `optim_wrapper.type=OptimWrapper`.
max_iters = 368750
val_interval = 5000
embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(
        type='AdamW', lr=0.0001, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1, decay_mult=1.0),
            'query_embed': embed_multi,
            'query_feat': embed_multi,
            'level_embed': embed_multi,
        },
        norm_decay_mult=0.0),
    clip_grad=dict(max_norm=0.01, norm_type=2))
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[327778, 355092],
        gamma=0.1)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)
