import logging
import os

import pytest

os.environ.setdefault('MPLBACKEND', 'Agg')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session', autouse=True)
def _register_mmssis():
    """Every test sees mmssis' registries populated (configs use default_scope='mmssis')."""
    from mmssis.utils import install_safe_globals, register_all_modules
    register_all_modules(init_default_scope=False)
    install_safe_globals()  # mmengine's checkpoint loader: weights_only + allow-list
    yield


@pytest.fixture(scope='session')
def repo_root() -> str:
    return REPO


TINY_DEMO = dict(seed=0, num_train=12, num_val=4, image_size=128)


@pytest.fixture(scope='session')
def tiny_params() -> dict:
    """Generator arguments of :func:`tiny_demo`."""
    return dict(TINY_DEMO)


@pytest.fixture(scope='session')
def tiny_demo(tmp_path_factory):
    """A 12 + 4 image, 128 px demo set (generated once per session, < 1 s)."""
    from mmssis.demo.data import generate_demo_dataset
    root = tmp_path_factory.mktemp('demo')
    return generate_demo_dataset(str(root), **TINY_DEMO)


def pytest_configure(config):
    """One intra-op thread per process for the whole suite.

    Several tests start subprocesses (tools, torchrun with 2 ranks) next to the pytest
    process; with 2 OpenMP threads each on 2 cores, spinning threads slow convolutions down
    by 10-100x. One thread per process keeps every test's time predictable.
    """
    os.environ['OMP_NUM_THREADS'] = '1'
    os.environ['MKL_NUM_THREADS'] = '1'
    # Demo SAM configs keep an on-disk embedding cache (default work_dirs/sam_cache):
    # tests that build them must not write into the checkout.
    import tempfile
    os.environ['MMSSIS_SAM_CACHE'] = tempfile.mkdtemp(prefix='mmssis_sam_cache_')
    import torch
    torch.set_num_threads(1)


class _Records(logging.Handler):

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def log_records():
    """Messages sent to the current MMLogger during the test."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance(f'test_log_records_{id(object())}')
    handler = _Records()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


@pytest.fixture(autouse=True)
def _train_step_zero():
    """Every test starts at training step 0 of the derived random streams."""
    from mmssis.testing import set_train_step
    set_train_step(0)
    yield
