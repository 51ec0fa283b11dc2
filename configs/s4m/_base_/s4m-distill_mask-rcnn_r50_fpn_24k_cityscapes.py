# S4M stage 1: `mask-rcnn_r50_fpn_24k_cityscapes.py` (supervised teacher) plus SAM structural distillation with
# SAM 2 Hiera-L, as the official code trains its teachers (`SSL.USE_SAM True` in
# `scripts/*/train_teacher.sh`). See `configs/_base_/s4m_parts.py` for the settings.
# Swap SAM by replacing the `sam/` entry below (e.g. `../../_base_/sam/sam_vit_h.py`).
_base_ = ['./mask-rcnn_r50_fpn_24k_cityscapes.py', '../../_base_/sam/sam2_hiera_l.py', '../../_base_/s4m_parts.py']
model = dict(
    type='mmssis.SamDistillMaskRCNN',
    distill=dict(_base_.s4m_distill, sam=_base_.sam_backend))
