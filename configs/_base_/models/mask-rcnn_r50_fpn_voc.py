# MMDetection's Mask R-CNN R50-FPN (ImageNet `torchvision://resnet50` backbone) with the
# 20 PASCAL VOC classes. Inherited dicts keep `_scope_='mmdet'` (mmssis types need the
# `mmssis.` prefix).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
model = dict(
    roi_head=dict(bbox_head=dict(num_classes=20), mask_head=dict(num_classes=20)))
