from .hooks import *  # noqa: F401,F403
from .hooks import __all__ as _hooks_all
from .optim_wrappers import (NonFiniteLossError, SkipNonFiniteAmpOptimWrapper,
                             SkipNonFiniteOptimWrapper, save_nonfinite_checkpoint)

__all__ = list(_hooks_all) + [
    'NonFiniteLossError', 'SkipNonFiniteAmpOptimWrapper', 'SkipNonFiniteOptimWrapper',
    'save_nonfinite_checkpoint'
]
