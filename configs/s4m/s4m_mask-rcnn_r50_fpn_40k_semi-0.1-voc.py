# S4M stage 2 (SAM 2 refinement + ARP) on the split of `gd_mask-rcnn_r50_fpn_40k_semi-0.1-voc.py`. Train with
# `--cfg-options load_from=<checkpoint of s4m-distill_mask-rcnn_r50_fpn_20k_sup-0.1-voc.py>`.
#
# Data: PASCAL VOC 2012 + SBD instance masks in COCO format (RLE), made by
# `tools/dataset_converters/voc_to_coco_instance.py`, then split 10 % (fold 1) with
# `tools/misc/split_coco.py` (commands: `configs/_base_/datasets/voc_instance_labeled.py`):
#   semi_anns/voc12_trainaug_instance.1@10.json            labelled split
#   semi_anns/voc12_trainaug_instance.1@10-unlabeled.json  the rest of trainaug, unlabelled
#   annotations/voc12_val_instance.json                    VOC 2012 seg val (1,449 images)
# under data/VOCdevkit/VOC2012/, images in JPEGImages/.
_base_ = './_base_/s4m_mask-rcnn_r50_fpn_40k_voc.py'
labeled_dataset = dict(
    _base_.labeled_dataset,
    ann_file='semi_anns/voc12_trainaug_instance.1@10.json')
unlabeled_dataset = dict(
    _base_.unlabeled_dataset,
    ann_file='semi_anns/voc12_trainaug_instance.1@10-unlabeled.json')
train_dataloader = dict(dataset=dict(datasets=[labeled_dataset, unlabeled_dataset]))
