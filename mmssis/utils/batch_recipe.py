"""Keep a config's recipe global batch (and so its learning rate) on any number of GPUs.

The rule: a paper config states its recipe as ``recipe_gpus`` and
``auto_scale_lr.base_batch_size`` (images per iteration over all GPUs, labelled +
unlabelled for stage 2). On ``W`` GPUs each GPU then takes ``base_batch_size / W`` images,
split between the sources in the recipe's proportion, and the learning rate, iterations
and schedule stay the recipe's. ``tools/train.py --keep-global-batch`` applies it;
``--auto-scale-lr`` is mmdet's alternative (keep the per-GPU batch, scale the learning rate
linearly to the actual global batch).
"""
from typing import Any, Dict, List, Optional

from .sampler_check import SemiSamplerConfigError, exact_split, propose_split

__all__ = ['keep_global_batch']


def _splits_for(base: int, ratio: List[float], max_gpus: int = 64) -> List[int]:
    """GPU counts whose per-GPU batch realises ``ratio`` exactly."""
    return [gpus for gpus in range(1, max_gpus + 1)
            if base % gpus == 0 and exact_split(base // gpus, ratio) is not None]


def keep_global_batch(cfg: Any, world_size: int) -> Dict[str, Any]:
    """Set the per-GPU batch (and per-source split) of ``cfg`` so that ``world_size`` GPUs
    train with the recipe's global batch ``auto_scale_lr.base_batch_size`` (in place).

    Args:
        cfg: A loaded config with ``train_dataloader`` and ``auto_scale_lr.base_batch_size``.
        world_size: Number of training processes.

    Returns:
        ``{'batch_size': per-GPU batch, 'source_ratio': per-source images or None,
        'global_batch': base_batch_size}``.

    Raises:
        SemiSamplerConfigError: The config states no recipe batch, or the global batch
            cannot be split exactly over ``world_size`` GPUs (the message lists GPU counts
            that can, and the ``--auto-scale-lr`` alternative).
    """
    base = (cfg.get('auto_scale_lr') or {}).get('base_batch_size')
    if not base:
        raise SemiSamplerConfigError('--keep-global-batch needs the recipe batch: set '
                                     '`auto_scale_lr = dict(base_batch_size=<images per '
                                     'iteration over all GPUs>)` in the config')
    loader = cfg.train_dataloader
    sampler = loader.get('sampler') or {}
    ratio: Optional[List[float]] = sampler.get('source_ratio')
    alternatives = (f'GPU counts that can: {_splits_for(base, ratio or [1])}; or keep the '
                    'per-GPU batch and scale the learning rate with --auto-scale-lr')
    if base % world_size:
        raise SemiSamplerConfigError(
            f'--keep-global-batch: the recipe batch {base} does not split over {world_size} '
            f'GPUs. {alternatives}')
    per_gpu = base // world_size
    loader.batch_size = per_gpu
    new_ratio = None
    if ratio is not None:
        new_ratio = exact_split(per_gpu, ratio)
        if new_ratio is None:
            raise SemiSamplerConfigError(
                f'--keep-global-batch: {per_gpu} images per GPU cannot keep the recipe\'s '
                f'source_ratio {list(ratio)} on {world_size} GPUs '
                f'({propose_split(per_gpu, ratio)}). {alternatives}')
        sampler.batch_size = per_gpu
        sampler.source_ratio = new_ratio
    return dict(batch_size=per_gpu, source_ratio=new_ratio, global_batch=base)
