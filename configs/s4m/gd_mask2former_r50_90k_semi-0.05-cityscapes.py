# Stage 2 of the two-stage schedule (semi-supervised, no SAM): Mask2Former R50 teacher/student
# on the labelled 5 % of Cityscapes train (fixed S4M list perc_5.txt) + the unlabelled rest.
# Train with `--cfg-options load_from=<checkpoint of
# mask2former_r50_90k_sup-0.05-cityscapes.py>`.
_base_ = './_base_/gd_mask2former_r50_90k_cityscapes.py'
labeled_dataset = dict(
    _base_.labeled_dataset,
    ann_file='semi_anns/instancesonly_filtered_gtFine_train.perc_5.json')
unlabeled_dataset = dict(
    _base_.unlabeled_dataset,
    ann_file='semi_anns/instancesonly_filtered_gtFine_train.perc_5-unlabeled.json')
train_dataloader = dict(dataset=dict(datasets=[labeled_dataset, unlabeled_dataset]))
