"""Run a training stage through ``tools/train.py`` and evaluate its checkpoint.

Shared by ``tools/misc/run_demo.py`` and ``benchmarks/ablation.py``. A stage trains in a
subprocess, exactly as a user runs ``tools/train.py`` (so a crash in one stage cannot leave
state behind in the next), is resumed when its work dir has a ``last_checkpoint``, and is
skipped when ``final.pth`` exists.
"""
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_PROGRESS = (' - mmengine - INFO - Iter(', 'coco/segm_mAP', 'Error', 'calibration')


def _run_logged(cmd: List[str], log_file: str, echo: bool = True) -> None:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    with open(log_file, 'w') as f:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            f.write(line)
            if echo and any(p in line for p in _PROGRESS):
                print('  ' + line.rstrip()[-160:], flush=True)
        if proc.wait() != 0:
            raise RuntimeError(f'stage failed: {" ".join(cmd)}\nfull log: {log_file}')


def train_stage(config: str, work_dir: str, load_from: Optional[str] = None,
                options: Sequence[str] = (), force: bool = False, echo: bool = True) -> str:
    """Train ``config`` into ``work_dir``; returns ``<work_dir>/final.pth``.

    Args:
        config: Config path (relative to the repository root or absolute).
        work_dir: Work dir of the stage.
        load_from: Checkpoint whose weights initialise the model (stage-1 teacher).
        options: Extra ``--cfg-options`` ``key=value`` strings.
        force: Retrain even when ``final.pth`` exists.
        echo: Print training progress lines.
    """
    os.makedirs(work_dir, exist_ok=True)
    final = osp.join(work_dir, 'final.pth')
    if osp.isfile(final) and not force:
        return final
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', work_dir]
    opts = list(options)
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')) and not force:
        cmd.append('--resume')
    elif load_from:
        opts.append(f'load_from={load_from}')
    if opts:
        cmd += ['--cfg-options', *opts]
    _run_logged(cmd, osp.join(work_dir, 'train.log'), echo)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        last = f.read().strip()
    os.replace(last, final)
    os.remove(osp.join(work_dir, 'last_checkpoint'))
    return final


def evaluate_checkpoint(config: str, checkpoint: str, work_dir: str,
                        options: Optional[Dict] = None) -> Dict[str, float]:
    """Evaluate ``checkpoint`` with the config's test loop (in this process).

    Returns:
        mmdet's metric dict, e.g. ``coco/segm_mAP``, ``coco/bbox_mAP``.
    """
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmssis.utils import adapt_cfg_to_machine, register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(config if osp.isabs(config) else osp.join(REPO, config))
    if options:
        cfg.merge_from_dict(options)
    cfg.work_dir = work_dir
    cfg.load_from = checkpoint
    cfg.resume = False
    adapt_cfg_to_machine(cfg)
    return Runner.from_cfg(cfg).test()
