import os

import pytest

os.environ.setdefault('MPLBACKEND', 'Agg')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session', autouse=True)
def _register_mmssis():
    """Every test sees mmssis' registries populated (configs use default_scope='mmssis')."""
    from mmssis.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    yield


@pytest.fixture(scope='session')
def repo_root() -> str:
    return REPO
