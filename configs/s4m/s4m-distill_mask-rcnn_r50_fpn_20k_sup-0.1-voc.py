# S4M stage 1 (supervised + SAM 2 structural distillation) on the split of `mask-rcnn_r50_fpn_20k_sup-0.1-voc.py`.
# Its checkpoint is the teacher (`load_from`) of `s4m_mask-rcnn_r50_fpn_40k_semi-0.1-voc.py`.
#
# Data: PASCAL VOC 2012 + SBD instance masks in COCO format (RLE), made by
# `tools/dataset_converters/voc_to_coco_instance.py`, then split 10 % (fold 1) with
# `tools/misc/split_coco.py` (commands: `configs/_base_/datasets/voc_instance_labeled.py`):
#   annotations/voc12_trainaug_instance.json    VOC 2012 seg train + SBD train/val - VOC val
#   annotations/voc12_val_instance.json         VOC 2012 seg val (1,449 images)
#   semi_anns/voc12_trainaug_instance.1@10.json the labelled split trained on here
# under data/VOCdevkit/VOC2012/, images in JPEGImages/.
_base_ = './_base_/s4m-distill_mask-rcnn_r50_fpn_20k_voc.py'
train_dataloader = dict(dataset=dict(ann_file='semi_anns/voc12_trainaug_instance.1@10.json'))
