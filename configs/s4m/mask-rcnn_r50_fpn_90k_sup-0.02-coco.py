# Stage 1 of the two-stage schedule: Mask R-CNN R50-FPN trained on the labelled 2 % of COCO
# train2017 (split fold 1) only. Its checkpoint is the teacher (`load_from`) of `gd_mask-
# rcnn_r50_fpn_180k_semi-0.02-coco.py`.
_base_ = './_base_/mask-rcnn_r50_fpn_90k_coco.py'
train_dataloader = dict(dataset=dict(ann_file='semi_anns/instances_train2017.1@2.json'))
