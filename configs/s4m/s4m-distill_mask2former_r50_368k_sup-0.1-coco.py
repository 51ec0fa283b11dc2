# S4M stage 1 (supervised + SAM 2 structural distillation) on the split of `mask2former_r50_368k_sup-0.1-coco.py`.
# Its checkpoint is the teacher (`load_from`) of `s4m_mask2former_r50_368k_semi-0.1-coco.py`.
_base_ = './_base_/s4m-distill_mask2former_r50_368k_coco.py'
train_dataloader = dict(dataset=dict(ann_file='semi_anns/instances_train2017.1@10.json'))
