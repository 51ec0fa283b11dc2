from .sam_pseudo_refiner import PseudoLabelSamRefiner, original_cache_key, view_normalization

__all__ = ['PseudoLabelSamRefiner', 'original_cache_key', 'view_normalization']
