# S4M stage 1: `mask2former_r50_368k_coco.py` (supervised teacher) plus SAM structural distillation with
# SAM 2 Hiera-L, as the official code trains its teachers (`SSL.USE_SAM True` in
# `scripts/*/train_teacher.sh`). See `configs/_base_/s4m_parts.py` for the settings.
# Swap SAM by replacing the `sam/` entry below (e.g. `../../_base_/sam/sam_vit_h.py`).
_base_ = ['./mask2former_r50_368k_coco.py', '../../_base_/sam/sam2_hiera_l.py', '../../_base_/s4m_parts.py']
model = dict(
    type='mmssis.SamDistillMask2Former',
    distill=dict(_base_.s4m_distill, sam=_base_.sam_backend))
