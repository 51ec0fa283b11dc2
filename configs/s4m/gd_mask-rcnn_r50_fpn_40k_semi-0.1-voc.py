# Stage 2 of the two-stage schedule (semi-supervised, no SAM): Mask R-CNN R50-FPN
# teacher/student on the labelled 10 % of PASCAL VOC 2012 trainaug (split fold 1) + the
# unlabelled rest. Train with `--cfg-options load_from=<checkpoint of mask-
# rcnn_r50_fpn_20k_sup-0.1-voc.py>`.
_base_ = './_base_/gd_mask-rcnn_r50_fpn_40k_voc.py'
labeled_dataset = dict(
    _base_.labeled_dataset,
    ann_file='semi_anns/voc12_trainaug_instance.1@10.json')
unlabeled_dataset = dict(
    _base_.unlabeled_dataset,
    ann_file='semi_anns/voc12_trainaug_instance.1@10-unlabeled.json')
train_dataloader = dict(dataset=dict(datasets=[labeled_dataset, unlabeled_dataset]))
