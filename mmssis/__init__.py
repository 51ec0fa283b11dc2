"""mmssis: SAM-boosted semi-supervised instance segmentation for MMDetection 3.x."""
from .utils.version_check import check_versions
from .version import __version__, version_info

check_versions()

# torch >= 2.6 loads checkpoints with weights_only=True: allow-list mmengine's meta types once.
from .utils.checkpoint import install_safe_globals  # noqa: E402

install_safe_globals()

__all__ = ['__version__', 'version_info']
