# S4M stage 2 (SAM 2 refinement + ARP) on the split of `gd_mask-rcnn_r50_fpn_48k_semi-0.3-cityscapes.py`. Train with
# `--cfg-options load_from=<checkpoint of s4m-distill_mask-rcnn_r50_fpn_24k_sup-0.3-cityscapes.py>`.
_base_ = './_base_/s4m_mask-rcnn_r50_fpn_48k_cityscapes.py'
labeled_dataset = dict(
    _base_.labeled_dataset,
    ann_file='semi_anns/instancesonly_filtered_gtFine_train.perc_30.json')
unlabeled_dataset = dict(
    _base_.unlabeled_dataset,
    ann_file='semi_anns/instancesonly_filtered_gtFine_train.perc_30-unlabeled.json')
train_dataloader = dict(dataset=dict(datasets=[labeled_dataset, unlabeled_dataset]))
