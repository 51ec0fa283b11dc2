"""Two-process gloo checks for test_distributed.py (spawned workers; not a test module).

Each check writes its per-rank result to ``{out_dir}/{check}_rank{r}.pth``; the test
process compares ranks. Workers use one thread each (2 processes on a small CPU box).
"""
import datetime
import os
import os.path as osp
from types import SimpleNamespace

import numpy as np
import torch
import torch.distributed as dist
from mmengine.logging import MessageHub, MMLogger
from torch import nn

WORLD = 2


def _save(out_dir: str, name: str, rank: int, obj) -> None:
    torch.save(obj, osp.join(out_dir, f'{name}_rank{rank}.pth'))


# ------------------------------------------------------------------ checks
class _Detector(nn.Module):
    """What ConfidenceCalibrationHook needs of a semi detector."""

    num_classes = 2

    def __init__(self) -> None:
        super().__init__()
        self.teacher = nn.Linear(1, 1)
        self.semi_train_cfg = dict(score_thr=0.7, mask_thr=0.5, min_mask_area=0)
        self.class_score_thr = None


def calibration_records(rank: int) -> dict:
    """Different detections per rank (as from different image shards)."""
    rng = np.random.default_rng(100 + rank)
    n = 40
    scores = rng.uniform(0.05, 1.0, n)
    labels = rng.integers(0, 2, n)
    correct = rng.uniform(0, 1, n) < scores ** (1 + rank)  # rank 1 is less precise
    return dict(scores=scores.astype(np.float64), labels=labels.astype(np.int64),
                correct=correct)


def check_calibration_thresholds_agree(rank: int, out_dir: str) -> None:
    from mmssis.engine.hooks.calibration_hook import ConfidenceCalibrationHook
    hook = ConfidenceCalibrationHook(min_thr=0.1, max_thr=0.95, target_precision=0.8,
                                     min_support=3)
    hook._collect = lambda runner, model: calibration_records(rank)  # this rank's shard
    model = _Detector()
    runner = SimpleNamespace(
        model=model, message_hub=MessageHub.get_instance(f'calib_{rank}'),
        logger=MMLogger.get_instance(f'calib_{rank}'), work_dir=out_dir,
        visualizer=SimpleNamespace(add_scalars=lambda *a, **k: None,
                                   add_image=lambda *a, **k: None))
    state = hook.calibrate(runner, step=10)
    _save(out_dir, 'calibration', rank,
          dict(thresholds=state['thresholds'], class_score_thr=model.class_score_thr))


def check_derived_streams_per_rank(rank: int, out_dir: str) -> None:
    """Under a real process group each rank derives its own ARP / SAM-point streams for a
    step; the same rank and step derive the same stream again (nothing is stored)."""
    from mmengine.logging import MessageHub

    from mmssis.models.augments import ARPInstanceMixer
    from mmssis.utils.rank_seed import torch_generator
    MessageHub.get_current_instance().update_info('iter', 3)
    mixer = ARPInstanceMixer(seed=0)
    draws = [mixer.rng.random(4).tolist() for _ in range(2)]
    points = [torch.rand(4, generator=torch_generator(0, 'sam_points', 'a.jpg')).tolist()
              for _ in range(2)]
    _save(out_dir, 'rng', rank, dict(arp=draws, points=points))


CHECKS = (check_calibration_thresholds_agree,
          check_derived_streams_per_rank)


def worker(rank: int, port: int, out_dir: str) -> None:
    """``torch.multiprocessing.spawn`` entry point: run every check on this rank."""
    torch.set_num_threads(1)
    os.environ.setdefault('MPLBACKEND', 'Agg')
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=WORLD, timeout=datetime.timedelta(seconds=120))
    try:
        for check in CHECKS:
            check(rank, out_dir)
            dist.barrier()
    finally:
        dist.destroy_process_group()
