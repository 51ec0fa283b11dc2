from .transforms import *  # noqa: F401,F403
from . import transforms as _transforms
from .checked_coco import CheckedCocoDataset, CorruptImageError, ImageSizeMismatchError
from .coco_split import CocoFormatError, load_coco_json, split_coco
from .image_folder import UnlabeledImageFolder

__all__ = [
    'CheckedCocoDataset', 'CorruptImageError', 'ImageSizeMismatchError', 'CocoFormatError',
    'load_coco_json', 'split_coco', 'UnlabeledImageFolder'
] + list(getattr(_transforms, '__all__', []))
