from .normalization import view_normalization

__all__ = ['view_normalization']
