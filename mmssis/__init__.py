"""mmssis: SAM-boosted semi-supervised instance segmentation for MMDetection 3.x.

Importing mmssis changes no other library. Safe checkpoint loading for torch >= 2.6
(mmengine's checkpoint loader through ``weights_only=True`` with an allow-list) is switched
on by :func:`mmssis.utils.register_all_modules` (which the tools call) or directly with
:func:`mmssis.utils.install_safe_globals`.
"""
from .utils.version_check import check_versions
from .version import __version__, version_info

check_versions()

__all__ = ['__version__', 'version_info']
