# Runtime for mmssis configs: mmssis scope, iteration-based logging and checkpoints.
default_scope = 'mmssis'
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    # Every mmssis schedule is an IterBasedTrainLoop: validation metrics are logged at the
    # iteration they were measured (mmengine's default, by epoch, puts them all at step 0
    # in TensorBoard / scalars.json on an iteration loop). Training scalars are always
    # logged at their iteration.
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=100, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
