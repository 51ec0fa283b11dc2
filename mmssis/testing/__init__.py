from .config_check import unresolved_types
from .sam import build_echo_sam, build_tiny_sam, echo_box_refiner, echo_pseudo_refiner
from .semi_batch import (gt_teacher_pseudo_instances, make_sample, make_semi_batch,
                         tiny_mask2former_cfg, tiny_mask_rcnn_cfg)

__all__ = [
    'unresolved_types', 'build_tiny_sam', 'build_echo_sam', 'echo_box_refiner',
    'echo_pseudo_refiner', 'gt_teacher_pseudo_instances', 'make_sample', 'make_semi_batch',
    'tiny_mask_rcnn_cfg', 'tiny_mask2former_cfg'
]
