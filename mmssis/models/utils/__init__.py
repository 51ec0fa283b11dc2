from .mask_projection import (MissingHomographyError, masks_to_boxes, project_instance_masks,
                              project_masks, relative_homography, sample_homography)

__all__ = [
    'project_masks', 'project_instance_masks', 'masks_to_boxes', 'relative_homography',
    'sample_homography', 'MissingHomographyError'
]
from .sam_pseudo_refiner import PseudoLabelSamRefiner, denormalize_views  # noqa: E402

__all__ += ['PseudoLabelSamRefiner', 'denormalize_views']
