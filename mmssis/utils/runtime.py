"""Runtime adjustments shared by ``tools/train.py`` and ``tools/test.py``."""
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config


def adapt_cfg_to_machine(cfg: Config) -> Config:
    """Make a config runnable on the current machine, or fail with a clear message.

    * Distributed runs on a machine without CUDA use the ``gloo`` backend (NCCL needs GPUs).
    * A config that explicitly asks for CUDA (``device='cuda'`` or a ``cuda`` SAM device)
      on a machine without it raises instead of failing deep inside a forward pass.

    Args:
        cfg: The loaded config; modified in place.

    Returns:
        The same config.
    """
    has_cuda = torch.cuda.is_available()
    asked = _requested_device(cfg)
    if asked is not None and asked.startswith('cuda') and not has_cuda:
        raise RuntimeError(
            f'the config asks for device "{asked}" but this machine has no CUDA device '
            f'(torch {torch.__version__}, torch.cuda.is_available() is False). Remove the '
            f'device setting (mmssis then picks the CPU) or run on a GPU machine.')
    if not has_cuda:
        env_cfg = cfg.setdefault('env_cfg', {})
        dist_cfg = env_cfg.setdefault('dist_cfg', {})
        if dist_cfg.get('backend', 'nccl') == 'nccl':
            dist_cfg['backend'] = 'gloo'
        if cfg.get('launcher', 'none') != 'none' and cfg.get('model_wrapper_cfg') is None:
            # mmengine wraps with device_ids=[LOCAL_RANK], which DDP rejects on the CPU.
            from .cpu_ddp import register_cpu_ddp
            cfg.model_wrapper_cfg = dict(
                type=register_cpu_ddp(), broadcast_buffers=False,
                find_unused_parameters=cfg.get('find_unused_parameters', False))
    return cfg


def init_cpu_distributed(cfg: Config) -> None:
    """Start the gloo process group of a ``torchrun`` job on a machine without CUDA.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` unconditionally, which fails
    without a GPU; a process group that already exists is used by the runner as it is.

    Args:
        cfg: The config (its ``launcher`` and ``env_cfg.dist_cfg`` are read).
    """
    import torch.distributed as dist
    if torch.cuda.is_available() or cfg.get('launcher', 'none') != 'pytorch' \
            or dist.is_initialized():
        return
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo')
    dist.init_process_group(backend=backend)


def _requested_device(cfg: Config) -> Optional[str]:
    """Return an explicit device the config asks for (top-level or SAM backend), if any."""
    dev = cfg.get('device', None)
    if dev:
        return str(dev)
    semi = cfg.get('model', {}).get('semi_train_cfg', None) or {}
    for key in ('sam_refiner', 'sam'):
        part = semi.get(key, None)
        # configs of before the refiner merge nest it (refiner.backend)
        while isinstance(part, dict):
            backend = part.get('backend', None)
            if isinstance(backend, dict) and backend.get('device'):
                return str(backend['device'])
            if part.get('device'):
                return str(part['device'])
            part = part.get('refiner', None)
    return None


def default_work_dir(config_path: str) -> str:
    """``./work_dirs/<config stem>``, mmdet's default."""
    return osp.join('.', 'work_dirs', osp.splitext(osp.basename(config_path))[0])


def set_local_rank_env(local_rank: int) -> None:
    """torchrun passes LOCAL_RANK in the env; ``torch.distributed.launch`` as an argument."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)
