from .pseudo_labels import (mask2former_pseudo_instances, maskrcnn_pseudo_instances,
                            teacher_pseudo_instances)
from .semi_mask_detector import SemiMaskDetector

__all__ = [
    'SemiMaskDetector', 'teacher_pseudo_instances', 'maskrcnn_pseudo_instances',
    'mask2former_pseudo_instances'
]
from .sam_distill import SamDistillMask2Former, SamDistillMaskRCNN, SamDistillMixin  # noqa

__all__ += ['SamDistillMaskRCNN', 'SamDistillMask2Former', 'SamDistillMixin']
