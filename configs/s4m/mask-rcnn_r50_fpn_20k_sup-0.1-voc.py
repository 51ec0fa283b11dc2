# Stage 1 of the two-stage schedule: Mask R-CNN R50-FPN trained on the labelled 10 % of PASCAL
# VOC 2012 trainaug (split fold 1) only. Its checkpoint is the teacher (`load_from`) of
# `gd_mask-rcnn_r50_fpn_40k_semi-0.1-voc.py`.
_base_ = './_base_/mask-rcnn_r50_fpn_20k_voc.py'
train_dataloader = dict(dataset=dict(ann_file='semi_anns/voc12_trainaug_instance.1@10.json'))
