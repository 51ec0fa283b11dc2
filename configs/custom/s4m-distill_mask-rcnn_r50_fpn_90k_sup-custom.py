# S4M stage 1 on your data (configs/custom/custom_data.py): Mask R-CNN R50-FPN trained on the
# labelled images with SAM 2 structural distillation, the recipe of
# `configs/s4m/s4m-distill_mask-rcnn_r50_fpn_90k_sup-0.1-coco.py` (8 GPUs x 2 images).
# Its checkpoint is the teacher of `s4m_mask-rcnn_r50_fpn_180k_semi-custom.py`.
_base_ = ['../s4m/s4m-distill_mask-rcnn_r50_fpn_90k_sup-0.1-coco.py', './custom_data.py']

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
