# Mask2Former R50 for Cityscapes (8 thing classes). As in the official
# `Base-Cityscapes-InstanceSegmentation.yaml`, the backbone trains its (Sync)BN layers
# (mmengine reverts SyncBN to BN in non-distributed runs).
_base_ = './mask2former_r50.py'
num_things_classes = 8
model = dict(
    backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False),
    panoptic_head=dict(
        num_things_classes=num_things_classes,
        loss_cls=dict(class_weight=[1.0] * num_things_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_things_classes))
