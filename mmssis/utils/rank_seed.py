"""Per-rank seeds of the stochastic S4M parts.

Every seeded part (SAM point sampling, ARP, the student's strong augmentation, the
distillation query points) takes its config ``seed`` through :func:`rank_seed`, so that in a
multi-GPU run each process draws its own stream, as the official code does (one process per
GPU, each with its own generators), while the same seed on the same rank gives the same
draws run to run. Rank 0 keeps the config seed unchanged, so single-process runs (the demo,
the tests) draw exactly what they drew before ranks entered the seed.
"""
import hashlib

from mmengine.dist import get_dist_info

__all__ = ['rank_seed']


def rank_seed(seed: int, rank: int = None) -> int:
    """The seed a part uses on ``rank`` (default: this process's rank).

    Args:
        seed: The config seed of the part.
        rank: Process rank; ``None`` reads it from ``mmengine.dist.get_dist_info``.

    Returns:
        ``seed`` on rank 0; on another rank a 31-bit integer derived from ``(seed, rank)``
        by SHA-1 (distinct per rank, stable across runs and machines).
    """
    if rank is None:
        rank = get_dist_info()[0]
    if rank == 0:
        return int(seed)
    digest = hashlib.sha1(f'{int(seed)}|rank{int(rank)}'.encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF
