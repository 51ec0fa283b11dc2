from .hooks import *  # noqa: F401,F403
from .optim_wrappers import (NonFiniteLossError, SkipNonFiniteAmpOptimWrapper,  # noqa: F401
                             SkipNonFiniteOptimWrapper, save_nonfinite_checkpoint)
