# Stage 2 of the two-stage schedule (semi-supervised, no SAM): Mask R-CNN R50-FPN
# teacher/student on the labelled 1 % of COCO train2017 (split fold 1) + the unlabelled rest.
# Train with `--cfg-options load_from=<checkpoint of mask-rcnn_r50_fpn_90k_sup-0.01-coco.py>`.
_base_ = './_base_/gd_mask-rcnn_r50_fpn_180k_coco.py'
labeled_dataset = dict(
    _base_.labeled_dataset,
    ann_file='semi_anns/instances_train2017.1@1.json')
unlabeled_dataset = dict(
    _base_.unlabeled_dataset,
    ann_file='semi_anns/instances_train2017.1@1-unlabeled.json')
train_dataloader = dict(dataset=dict(datasets=[labeled_dataset, unlabeled_dataset]))
