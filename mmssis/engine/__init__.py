from .hooks import *  # noqa: F401,F403
from .optim_wrappers import (NonFiniteLossError, SkipNonFiniteAmpOptimWrapper, SkipNonFiniteOptimWrapper, save_nonfinite_checkpoint)  # noqa: E402,F401,E501
