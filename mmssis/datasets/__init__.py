from .checked_coco import CheckedCocoDataset, CorruptImageError, ImageSizeMismatchError
from .coco_split import CocoFormatError, load_coco_json, split_coco
from .image_folder import UnlabeledImageFolder

__all__ = [
    'CheckedCocoDataset', 'CorruptImageError', 'ImageSizeMismatchError', 'CocoFormatError',
    'load_coco_json', 'split_coco', 'UnlabeledImageFolder'
]
