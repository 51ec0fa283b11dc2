"""Version gates: fail early with an actionable message instead of deep inside mmdet."""
from importlib import metadata
from typing import Optional, Tuple

from packaging.version import Version

# (package, minimum inclusive, maximum exclusive, how to fix)
REQUIREMENTS: Tuple[Tuple[str, str, Optional[str], str], ...] = (
    ('mmcv', '2.0.0', '2.2.0',
     'mmdet 3.3 needs mmcv>=2.0,<2.2: run `make venv` (CPU) or '
     '`mim install "mmcv>=2.0.0,<2.2.0"` (GPU)'),
    ('mmengine', '0.10.0', '1.0.0', 'pip install "mmengine>=0.10,<1"'),
    ('mmdet', '3.3.0', '3.4.0', 'pip install "mmdet>=3.3,<3.4"'),
)


def check_versions(requirements=REQUIREMENTS) -> None:
    """Raise ``ImportError`` naming the package, the found version and the fix.

    Args:
        requirements: Tuples ``(name, min_inclusive, max_exclusive_or_None, fix)``.
    """
    for name, lo, hi, fix in requirements:
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise ImportError(f'mmssis needs {name}>={lo}' + (f',<{hi}' if hi else '') +
                              f' but it is not installed. Fix: {fix}') from None
        v = Version(found)
        if v < Version(lo) or (hi is not None and v >= Version(hi)):
            raise ImportError(f'mmssis needs {name}>={lo}' + (f',<{hi}' if hi else '') +
                              f' but found {name}=={found}. Fix: {fix}')
