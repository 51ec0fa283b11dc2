# S4M stage 2 on your data (configs/custom/custom_data.py): SAM 2 refinement + ARP, the recipe
# of `configs/s4m/s4m_mask-rcnn_r50_fpn_180k_semi-0.1-coco.py` (8 GPUs x (2 + 2)). The
# unlabelled source is the image folder (`UnlabeledImageFolder`) or the json of custom_data.
# Train with `--cfg-options load_from=<checkpoint of s4m-distill_..._sup-custom.py>`.
_base_ = ['../s4m/s4m_mask-rcnn_r50_fpn_180k_semi-0.1-coco.py', './custom_data.py']

__data = _base_.custom_data
__root = __data['data_root']
metainfo = dict(classes=tuple(__data['classes']))
num_classes = len(__data['classes'])
model = dict(
    detector=dict(roi_head=dict(bbox_head=dict(num_classes=num_classes),
                                mask_head=dict(num_classes=num_classes))))
labeled_dataset = dict(
    _base_.labeled_dataset, data_root=__root, metainfo=metainfo,
    ann_file=__data['labeled_ann'], data_prefix=dict(img=__data['img_prefix']))
if __data.get('unlabeled_img_dir'):
    __unlabeled = dict(
        type='mmssis.UnlabeledImageFolder', data_root=__root, metainfo=metainfo,
        data_prefix=dict(img=__data['unlabeled_img_dir']),
        pipeline=_base_.unlabeled_dataset.pipeline)
else:
    __unlabeled = dict(
        _base_.unlabeled_dataset, data_root=__root, metainfo=metainfo,
        ann_file=__data['unlabeled_ann'], data_prefix=dict(img=__data['img_prefix']))
unlabeled_dataset = dict(_delete_=True, **__unlabeled)
train_dataloader = dict(dataset=dict(datasets=[labeled_dataset, __unlabeled]))
val_dataloader = dict(
    dataset=dict(data_root=__root, metainfo=metainfo, ann_file=__data['val_ann'],
                 data_prefix=dict(img=__data['img_prefix'])))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=__root + __data['val_ann'])
test_evaluator = val_evaluator
