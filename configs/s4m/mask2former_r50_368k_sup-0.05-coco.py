# Stage 1 of the two-stage schedule: Mask2Former R50 trained on the labelled 5 % of COCO
# train2017 (split fold 1) only. Its checkpoint is the teacher (`load_from`) of
# `gd_mask2former_r50_368k_semi-0.05-coco.py`.
_base_ = './_base_/mask2former_r50_368k_coco.py'
train_dataloader = dict(dataset=dict(ann_file='semi_anns/instances_train2017.1@5.json'))
