"""setup.py shim: metadata lives in pyproject.toml; this adds the MIM extension.

``mim train mmssis CONFIG`` looks for ``mmssis/.mim/{tools,configs}`` inside the installed
package, so a build copies ``configs/`` and ``tools/`` there (a source checkout gets
symbolic links instead, so ``mmssis/.mim`` always mirrors the repository).
"""
import os
import os.path as osp
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

MIM_FILES = ('configs', 'tools', 'README.md', 'model-index.yml', 'data_splits')


def add_mim_extension(target_root: str, mode: str) -> None:
    """Populate ``<target_root>/mmssis/.mim`` with the configs and tools.

    Args:
        target_root: Directory that holds the ``mmssis`` package being built/installed.
        mode: ``'copy'`` (wheels, sdists) or ``'symlink'`` (source checkout).
    """
    here = osp.dirname(osp.abspath(__file__))
    mim_dir = osp.join(target_root, 'mmssis', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(here, name)
        if not osp.exists(src):
            continue
        dst = osp.join(mim_dir, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


class BuildPyWithMim(build_py):
    """``build_py`` that also copies configs/tools into the built ``mmssis/.mim``."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            add_mim_extension(self.build_lib, mode='copy')


if __name__ == '__main__':
    add_mim_extension(osp.dirname(osp.abspath(__file__)), mode='symlink')
    setup(cmdclass={'build_py': BuildPyWithMim})
