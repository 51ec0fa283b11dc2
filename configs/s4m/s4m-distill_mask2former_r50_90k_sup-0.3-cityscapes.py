# S4M stage 1 (supervised + SAM 2 structural distillation) on the split of `mask2former_r50_90k_sup-0.3-cityscapes.py`.
# Its checkpoint is the teacher (`load_from`) of `s4m_mask2former_r50_90k_semi-0.3-cityscapes.py`.
_base_ = './_base_/s4m-distill_mask2former_r50_90k_cityscapes.py'
train_dataloader = dict(
    dataset=dict(ann_file='semi_anns/instancesonly_filtered_gtFine_train.perc_30.json'))
