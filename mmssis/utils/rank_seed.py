"""Derived random streams of the stochastic S4M parts.

Every stochastic part (SAM point sampling, ARP, the student's strong augmentation, the
distillation query points, and torch's global generator that mmdet's samplers read) draws
from a generator *derived* from ``(config seed, part, training step, rank, image key)``
instead of a generator that lives across steps. So:

* a step's draws are a function of the step: ``--resume`` replays a step exactly with no
  generator state in the checkpoint and no hook (mmengine's resume already replays the data
  pipeline by re-reading the skipped batches);
* each rank draws its own stream (the rank enters the derivation), as the official code's one
  process per GPU with its own generators;
* a measurement (calibration slice, drawing) that runs the same parts between two steps
  cannot shift the training draws: nothing is consumed.

The training step is mmengine's runtime info ``'iter'`` (``RuntimeInfoHook`` sets it before
every training iteration to the number of optimizer steps done); 0 outside a runner.
"""
import hashlib
from typing import Hashable, Optional

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import MessageHub

__all__ = ['train_step', 'derived_seed', 'torch_generator', 'numpy_generator',
           'reseed_global_torch', 'run_seed']


def run_seed() -> int:
    """The run's seed as torch's default generator holds it (mmengine seeds it from
    ``randomness.seed`` before the model is built); parts with ``seed=None`` use it."""
    return int(torch.initial_seed()) & 0x7FFFFFFFFFFFFFFF


def train_step() -> int:
    """Optimizer steps done before the current training iteration (0 outside a runner)."""
    return int(MessageHub.get_current_instance().get_info('iter', 0) or 0)


def derived_seed(seed: int, part: str, *keys: Hashable, step: Optional[int] = None,
                 rank: Optional[int] = None) -> int:
    """A 63-bit seed derived by SHA-1 from ``(seed, part, step, rank, *keys)``.

    Args:
        seed: The config seed of the part.
        part: Name of the part (``'sam_points'``, ``'arp'``, ...): parts with one seed draw
            independent streams.
        *keys: Further keys, e.g. the image path.
        step: Training step; ``None`` reads :func:`train_step`.
        rank: Process rank; ``None`` reads ``mmengine.dist.get_dist_info``.
    """
    step = train_step() if step is None else int(step)
    rank = get_dist_info()[0] if rank is None else int(rank)
    text = '|'.join([str(int(seed)), part, f'step{step}', f'rank{rank}', *map(str, keys)])
    return int(hashlib.sha1(text.encode()).hexdigest()[:16], 16) & 0x7FFFFFFFFFFFFFFF


def torch_generator(seed: int, part: str, *keys: Hashable, step: Optional[int] = None,
                    rank: Optional[int] = None, device='cpu') -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded by :func:`derived_seed`."""
    gen = torch.Generator(device=device)
    gen.manual_seed(derived_seed(seed, part, *keys, step=step, rank=rank))
    return gen


def numpy_generator(seed: int, part: str, *keys: Hashable, step: Optional[int] = None,
                    rank: Optional[int] = None) -> np.random.Generator:
    """A fresh ``numpy.random.Generator`` seeded by :func:`derived_seed`."""
    return np.random.default_rng(derived_seed(seed, part, *keys, step=step, rank=rank))


def reseed_global_torch(seed: int, part: str = 'global', step: Optional[int] = None) -> None:
    """Seed torch's global generators (CPU and CUDA) for this training step.

    mmdet's samplers (RPN / RoI ``RandomSampler``, Mask2Former's point sampling) draw from
    torch's global generator; seeding it from the step makes their draws a function of the
    step too. numpy's and Python's global generators are left to the data pipeline.
    """
    torch.manual_seed(derived_seed(seed, part, step=step))
