"""Shared fixtures: one tiny demo data set per test session."""
import pytest

from mmssis.datasets.demo_data import DemoDatasetInfo, generate_demo_dataset

TINY = dict(seed=0, num_train=12, num_val=4, image_size=128)


@pytest.fixture(scope='session')
def tiny_params() -> dict:
    """Generator arguments of :func:`tiny_demo`."""
    return dict(TINY)


@pytest.fixture(scope='session')
def tiny_demo(tmp_path_factory) -> DemoDatasetInfo:
    """A 12 + 4 image, 128 px demo set (generated once, < 1 s)."""
    root = tmp_path_factory.mktemp('demo')
    return generate_demo_dataset(str(root), **TINY)
