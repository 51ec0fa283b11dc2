import numpy as np
import pytest
import torch

from mmssis.sam import SamModelBackend
from mmssis.testing import build_echo_sam, build_tiny_sam


class CallCounter:
    """Counts forward calls of a module through a forward hook."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        module.register_forward_hook(self._hook)

    def _hook(self, _m, inputs, _out):
        self.calls += 1


@pytest.fixture
def tiny_backend() -> SamModelBackend:
    return SamModelBackend(build_tiny_sam(seed=0))


@pytest.fixture
def echo_backend() -> SamModelBackend:
    return SamModelBackend(build_echo_sam())


@pytest.fixture
def image() -> np.ndarray:
    """Non-square (H=300, W=500) RGB image."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(300, 500, 3), dtype=np.uint8)


@pytest.fixture
def count_calls():
    """``count_calls(module)`` -> a :class:`CallCounter` attached to ``module``."""
    return CallCounter
