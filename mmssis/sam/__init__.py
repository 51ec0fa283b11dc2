"""Frozen SAM backends, S4M pseudo-mask refinement and an image-embedding cache.

SAM objects here are plain Python objects (not ``nn.Module``), so they never enter
a detector's ``state_dict``, optimizer or EMA (see :mod:`mmssis.sam.base`).
"""
from .base import SamBackend, to_hwc_uint8_rgb
from .embedding import ImageEmbedding
from .cache import EmbeddingCache, build_embedding_cache, make_cache_key, original_cache_key
from .checkpoint import SamCheckpointError, load_sam_weights, read_state_dict
from .lite_medsam import LiteMedSamBackend, build_lite_medsam_sam, default_lite_medsam_checkpoint
from .prompts import sample_points_from_logits
from .refiner import RefinedInstances, SamMaskRefiner
from .sam2_backend import Sam2Backend, sam2_available
from .sam_model import SamModelBackend
from .segment_anything_backend import SegmentAnythingBackend

__all__ = [
    'ImageEmbedding', 'SamBackend', 'to_hwc_uint8_rgb', 'SamModelBackend',
    'SegmentAnythingBackend', 'LiteMedSamBackend', 'Sam2Backend', 'sam2_available',
    'build_lite_medsam_sam', 'default_lite_medsam_checkpoint', 'SamCheckpointError',
    'load_sam_weights', 'read_state_dict', 'EmbeddingCache', 'build_embedding_cache',
    'make_cache_key', 'original_cache_key', 'sample_points_from_logits',
    'SamMaskRefiner', 'RefinedInstances'
]
