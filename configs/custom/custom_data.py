# Your data set, set once: every config in configs/custom/ reads `custom_data` and derives the
# class count, the labelled / unlabelled / val data sets and the evaluator from it.
#
# Layout (paths relative to data_root):
#   <img_prefix>...               labelled and val images (json `file_name`s are relative to it)
#   <labeled_ann>                 COCO json of the labelled images: polygon or RLE masks, one
#                                 category per class, named as in `classes`
#   <val_ann>                     COCO json with ground truth for evaluation
#   unlabelled images: either a folder (`unlabeled_img_dir`, searched recursively, no json)
#                      or a COCO json with no annotations (`unlabeled_ann`); set one of them
# Edit the values below (or copy this file and point the configs' `_base_` at the copy).
custom_data = dict(
    data_root='data/my_dataset/',
    classes=('cat', 'dog', 'bird'),
    img_prefix='images/',
    labeled_ann='annotations/labeled.json',
    unlabeled_img_dir='unlabeled/',
    unlabeled_ann=None,
    val_ann='annotations/val.json',
)
