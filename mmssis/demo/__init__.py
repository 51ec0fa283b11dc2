"""The embedded demo data set: photo-textured shapes rendered offline (no download)."""
from .data import (DEMO_CLASSES, DEMO_PALETTE, DemoDatasetInfo, demo_metainfo,
                   generate_demo_dataset)

__all__ = ['DEMO_CLASSES', 'DEMO_PALETTE', 'DemoDatasetInfo', 'demo_metainfo',
           'generate_demo_dataset']
