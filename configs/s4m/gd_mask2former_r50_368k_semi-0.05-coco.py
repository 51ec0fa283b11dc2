# Stage 2 of the two-stage schedule (semi-supervised, no SAM): Mask2Former R50 teacher/student
# on the labelled 5 % of COCO train2017 (split fold 1) + the unlabelled rest. Train with
# `--cfg-options load_from=<checkpoint of mask2former_r50_368k_sup-0.05-coco.py>`.
_base_ = './_base_/gd_mask2former_r50_368k_coco.py'
labeled_dataset = dict(
    _base_.labeled_dataset,
    ann_file='semi_anns/instances_train2017.1@5.json')
unlabeled_dataset = dict(
    _base_.unlabeled_dataset,
    ann_file='semi_anns/instances_train2017.1@5-unlabeled.json')
train_dataloader = dict(dataset=dict(datasets=[labeled_dataset, unlabeled_dataset]))
