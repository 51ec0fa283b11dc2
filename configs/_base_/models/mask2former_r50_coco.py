# Mask2Former R50 for COCO (80 classes) trained with large-scale jitter: every batch is padded
# to the 1024 x 1024 crop size (images and masks), as in MMDetection's / detectron2's LSJ
# recipe.
_base_ = './mask2former_r50.py'
lsj_pad_size = (1024, 1024)
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(
            type='BatchFixedSizePad',
            size=lsj_pad_size,
            img_pad_value=0,
            pad_mask=True,
            mask_pad_value=0,
            pad_seg=False)
    ]))
