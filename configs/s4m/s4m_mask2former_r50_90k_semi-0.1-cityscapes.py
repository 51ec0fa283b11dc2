# S4M stage 2 (SAM 2 refinement + ARP) on the split of `gd_mask2former_r50_90k_semi-0.1-cityscapes.py`. Train with
# `--cfg-options load_from=<checkpoint of s4m-distill_mask2former_r50_90k_sup-0.1-cityscapes.py>`.
_base_ = './_base_/s4m_mask2former_r50_90k_cityscapes.py'
labeled_dataset = dict(
    _base_.labeled_dataset,
    ann_file='semi_anns/instancesonly_filtered_gtFine_train.perc_10.json')
unlabeled_dataset = dict(
    _base_.unlabeled_dataset,
    ann_file='semi_anns/instancesonly_filtered_gtFine_train.perc_10-unlabeled.json')
train_dataloader = dict(dataset=dict(datasets=[labeled_dataset, unlabeled_dataset]))
