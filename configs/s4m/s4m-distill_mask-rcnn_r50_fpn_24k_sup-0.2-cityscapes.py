# S4M stage 1 (supervised + SAM 2 structural distillation) on the split of `mask-rcnn_r50_fpn_24k_sup-0.2-cityscapes.py`.
# Its checkpoint is the teacher (`load_from`) of `s4m_mask-rcnn_r50_fpn_48k_semi-0.2-cityscapes.py`.
_base_ = './_base_/s4m-distill_mask-rcnn_r50_fpn_24k_cityscapes.py'
train_dataloader = dict(
    dataset=dict(ann_file='semi_anns/instancesonly_filtered_gtFine_train.perc_20.json'))
