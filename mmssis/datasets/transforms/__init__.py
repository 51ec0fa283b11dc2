from .sam_refine import SamRefineInstances

__all__ = ['SamRefineInstances']
