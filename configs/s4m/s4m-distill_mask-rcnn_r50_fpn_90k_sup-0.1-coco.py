# S4M stage 1 (supervised + SAM 2 structural distillation) on the split of `mask-rcnn_r50_fpn_90k_sup-0.1-coco.py`.
# Its checkpoint is the teacher (`load_from`) of `s4m_mask-rcnn_r50_fpn_180k_semi-0.1-coco.py`.
_base_ = './_base_/s4m-distill_mask-rcnn_r50_fpn_90k_coco.py'
train_dataloader = dict(dataset=dict(ann_file='semi_anns/instances_train2017.1@10.json'))
