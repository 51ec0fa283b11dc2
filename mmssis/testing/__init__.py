from .config_check import unresolved_types
from .sam import build_echo_sam, build_tiny_sam, echo_box_refiner
from .semi_batch import (gt_teacher_pseudo_instances, make_sample, make_semi_batch,
                         tiny_mask2former_cfg, tiny_mask_rcnn_cfg)

__all__ = [
    'unresolved_types', 'build_tiny_sam', 'build_echo_sam', 'echo_box_refiner',
    'gt_teacher_pseudo_instances', 'make_sample', 'make_semi_batch',
    'tiny_mask_rcnn_cfg', 'tiny_mask2former_cfg'
]


def set_train_step(step: int) -> None:
    """Set the training step the derived random streams read (mmengine's runtime info
    ``'iter'``, as ``RuntimeInfoHook`` does before every training iteration)."""
    from mmengine.logging import MessageHub
    MessageHub.get_current_instance().update_info('iter', int(step))


__all__.append('set_train_step')
