# S4M stage 1: `mask-rcnn_r50_fpn_20k_voc.py` (supervised teacher) plus SAM structural distillation with
# SAM 2 Hiera-L, as the official code trains its teachers (`SSL.USE_SAM True` in
# `scripts/*/train_teacher.sh`; the official code has no VOC run: the mmssis VOC protocol with
# the S4M parts of the COCO / Cityscapes configs). See `configs/_base_/s4m_parts.py` for the
# settings.
# SAM: the `_base_` line of `configs/_base_/s4m_parts.py` (SAM 2 Hiera-L).
_base_ = ['./mask-rcnn_r50_fpn_20k_voc.py', '../../_base_/s4m_parts.py']
model = dict(
    type='mmssis.SamDistillMaskRCNN',
    distill=_base_.s4m_distill)
