from .config_check import unresolved_types

__all__ = ['unresolved_types']
