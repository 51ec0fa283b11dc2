"""Import a script of the repository's ``tools/`` (not a package) as a module."""
import importlib.util
import os.path as osp
from types import ModuleType

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool(relpath: str) -> ModuleType:
    """Load ``tools/<relpath>`` (e.g. ``'misc/run_demo.py'``) as a fresh module.

    Tests and tools use it to call a tool's functions directly instead of via a subprocess.

    Raises:
        FileNotFoundError: The script does not exist (e.g. ``mmssis`` installed without
            the repository checkout next to it).
    """
    path = osp.join(REPO, 'tools', relpath)
    if not osp.isfile(path):
        raise FileNotFoundError(f'tool script not found: {path}')
    name = osp.splitext(osp.basename(relpath))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
