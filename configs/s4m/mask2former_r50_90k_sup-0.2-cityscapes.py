# Stage 1 of the two-stage schedule: Mask2Former R50 trained on the labelled 20 % of Cityscapes
# train (fixed S4M list perc_20.txt) only. Its checkpoint is the teacher (`load_from`) of
# `gd_mask2former_r50_90k_semi-0.2-cityscapes.py`.
_base_ = './_base_/mask2former_r50_90k_cityscapes.py'
train_dataloader = dict(
    dataset=dict(ann_file='semi_anns/instancesonly_filtered_gtFine_train.perc_20.json'))
