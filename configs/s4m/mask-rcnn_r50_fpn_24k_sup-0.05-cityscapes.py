# Stage 1 of the two-stage schedule: Mask R-CNN R50-FPN trained on the labelled 5 % of
# Cityscapes train (fixed S4M list perc_5.txt) only. Its checkpoint is the teacher
# (`load_from`) of `gd_mask-rcnn_r50_fpn_48k_semi-0.05-cityscapes.py`.
_base_ = './_base_/mask-rcnn_r50_fpn_24k_cityscapes.py'
train_dataloader = dict(
    dataset=dict(ann_file='semi_anns/instancesonly_filtered_gtFine_train.perc_5.json'))
