from .transforms import *  # noqa: F401,F403
from . import transforms as _transforms
from .checked_coco import CheckedCocoDataset, CorruptImageError
from .coco_split import CocoFormatError, load_coco_json, split_coco
from .demo_data import (DEMO_CLASSES, DEMO_PALETTE, DemoDatasetInfo,
                        demo_metainfo, generate_demo_dataset)

__all__ = [
    'CheckedCocoDataset', 'CorruptImageError', 'CocoFormatError',
    'load_coco_json', 'split_coco', 'DEMO_CLASSES', 'DEMO_PALETTE',
    'DemoDatasetInfo', 'demo_metainfo', 'generate_demo_dataset'
] + list(getattr(_transforms, '__all__', []))
