# Stage 2 of the two-stage schedule (semi-supervised, no SAM): Mask R-CNN R50-FPN
# teacher/student on the labelled 10 % of Cityscapes train (fixed S4M list perc_10.txt) + the
# unlabelled rest. Train with `--cfg-options load_from=<checkpoint of mask-
# rcnn_r50_fpn_24k_sup-0.1-cityscapes.py>`.
_base_ = './_base_/gd_mask-rcnn_r50_fpn_48k_cityscapes.py'
labeled_dataset = dict(
    _base_.labeled_dataset,
    ann_file='semi_anns/instancesonly_filtered_gtFine_train.perc_10.json')
unlabeled_dataset = dict(
    _base_.unlabeled_dataset,
    ann_file='semi_anns/instancesonly_filtered_gtFine_train.perc_10-unlabeled.json')
train_dataloader = dict(dataset=dict(datasets=[labeled_dataset, unlabeled_dataset]))
