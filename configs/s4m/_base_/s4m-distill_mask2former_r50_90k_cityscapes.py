# S4M stage 1: `mask2former_r50_90k_cityscapes.py` (supervised teacher) plus SAM structural distillation with
# SAM 2 Hiera-L, as the official code trains its teachers (`SSL.USE_SAM True` in
# `scripts/*/train_teacher.sh`). See `configs/_base_/s4m_parts.py` for the settings.
# SAM: the `_base_` line of `configs/_base_/s4m_parts.py` (SAM 2 Hiera-L).
_base_ = ['./mask2former_r50_90k_cityscapes.py', '../../_base_/s4m_parts.py']
model = dict(
    type='mmssis.SamDistillMask2Former',
    distill=_base_.s4m_distill)
