# S4M stage 2 (SAM 2 refinement + ARP) on the split of `gd_mask-rcnn_r50_fpn_180k_semi-0.02-coco.py`. Train with
# `--cfg-options load_from=<checkpoint of s4m-distill_mask-rcnn_r50_fpn_90k_sup-0.02-coco.py>`.
_base_ = './_base_/s4m_mask-rcnn_r50_fpn_180k_coco.py'
labeled_dataset = dict(
    _base_.labeled_dataset,
    ann_file='semi_anns/instances_train2017.1@2.json')
unlabeled_dataset = dict(
    _base_.unlabeled_dataset,
    ann_file='semi_anns/instances_train2017.1@2-unlabeled.json')
train_dataloader = dict(dataset=dict(datasets=[labeled_dataset, unlabeled_dataset]))
