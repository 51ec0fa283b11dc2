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
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub, MMLogger
from torch import nn

WORLD = 2


def _save(out_dir: str, name: str, rank: int, obj) -> None:
    torch.save(obj, osp.join(out_dir, f'{name}_rank{rank}.pth'))


# ------------------------------------------------------------------ checks
def check_nonfinite_skip_agrees(rank: int, out_dir: str) -> None:
    """Rank 1 alone gets a NaN loss at step 2: both ranks skip it, nobody hangs.

    With and without ``find_unused_parameters`` (the semi configs set it): DDP must accept
    a forward whose backward was skipped on every rank.
    """
    from torch.nn.parallel import DistributedDataParallel

    from mmssis.engine.optim_wrappers import SkipNonFiniteOptimWrapper
    result = {}
    for find_unused in (False, True):
        torch.manual_seed(0)
        model = DistributedDataParallel(nn.Linear(2, 1), find_unused_parameters=find_unused)
        wrapper = SkipNonFiniteOptimWrapper(
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1), max_consecutive=3)
        x = torch.full((4, 2), float(rank + 1))
        skipped = []
        for step in range(1, 5):
            loss = ((model(x) - 1.0)**2).mean()
            if rank == 1 and step == 2:
                loss = loss * float('nan')
            wrapper.update_params(loss)
            skipped.append(wrapper.total_skipped)
        result[find_unused] = dict(skipped=skipped,
                                   weight=model.module.weight.detach().clone())
    _save(out_dir, 'nonfinite', rank, result)


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


def check_rng_states_gathered_per_rank(rank: int, out_dir: str) -> None:
    """Rank 0's checkpoint gets both ranks' states; each rank restores its own."""
    from mmssis.engine.hooks.rng_state_hook import CKPT_META_KEY, RngStateHook
    torch.manual_seed(rank)
    np.random.seed(rank)
    model = SimpleNamespace()
    loop = SimpleNamespace(dataloader_iterator=iter(range(100)))
    runner = SimpleNamespace(model=model, train_loop=loop, iter=3, epoch=0,
                             hooks=[CheckpointHook(interval=4, by_epoch=False)],
                             train_dataloader=SimpleNamespace(num_workers=0))
    hook = RngStateHook()
    hook.after_train_iter(runner, 3)  # step 4 is a checkpoint step: collective gather
    ckpt = {}
    if rank == 0:  # Runner.save_checkpoint is master-only
        hook.before_save_checkpoint(runner, ckpt)
    expected = (float(torch.rand(())), float(np.random.rand()))
    obj = [ckpt]
    dist.broadcast_object_list(obj, src=0)  # what every rank loads on resume
    torch.manual_seed(1000)
    np.random.seed(1000)
    fresh = RngStateHook()
    runner.iter = 4
    fresh.after_load_checkpoint(runner, obj[0])
    fresh.before_train(runner)
    for _ in range(5):
        next(runner.train_loop.dataloader_iterator)  # skip 4, restore before the 5th
    got = (float(torch.rand(())), float(np.random.rand()))
    meta = obj[0]['meta'][CKPT_META_KEY]
    _save(out_dir, 'rng', rank, dict(expected=expected, got=got,
                                     saved_ranks=len(meta['ranks'])))


CHECKS = (check_nonfinite_skip_agrees, check_calibration_thresholds_agree,
          check_rng_states_gathered_per_rank)


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
