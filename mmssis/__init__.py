"""mmssis: SAM-boosted semi-supervised instance segmentation for MMDetection 3.x.

Importing mmssis, and :func:`mmssis.utils.register_all_modules`, change no other library.
Safe checkpoint loading for torch >= 2.6 (mmengine's checkpoint loader through
``weights_only=True`` with an allow-list) is switched on explicitly with
:func:`mmssis.utils.install_safe_globals`, as the tools do.
"""
from .utils.version_check import check_versions
from .version import __version__, version_info

check_versions()

__all__ = ['__version__', 'version_info']
