"""Pure operations on masks, boxes and view frames, and a device mask type (no other mmssis
imports)."""
from .mask_ops import (ImageMatch, MissingHomographyError, align_to_gt_frame, as_bool_masks,
                       boxes_to_masks, denormalize_views, encode_rle, loosen_boxes, mask_iou,
                       masks_to_boxes, match_instances, paired_mask_iou, project_instance_masks,
                       project_masks, relative_homography, sample_homography)
from .tensor_masks import TensorMasks

__all__ = [
    'ImageMatch', 'MissingHomographyError', 'align_to_gt_frame', 'as_bool_masks',
    'boxes_to_masks', 'denormalize_views', 'encode_rle', 'loosen_boxes', 'mask_iou',
    'masks_to_boxes', 'match_instances',
    'paired_mask_iou', 'project_instance_masks', 'project_masks', 'relative_homography',
    'sample_homography', 'TensorMasks'
]
