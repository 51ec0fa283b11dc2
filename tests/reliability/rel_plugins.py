"""Registered helpers for the reliability tests.

Imported in-process by the tests and, in subprocess runs (``tools/train.py``,
``tools/dist_train.sh``), through ``custom_imports=dict(imports=['rel_plugins'])`` with this
folder on ``PYTHONPATH``. Not a test module (pytest collects ``test_*.py`` only).
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import BaseModel, is_model_wrapper
from torch import nn
from torch.utils.data import Dataset

from mmssis.registry import DATASETS, HOOKS, MODELS
from mmssis.sam import SamModelBackend
from mmssis.testing import build_tiny_sam


@MODELS.register_module(force=True)
class TinyRandomSamBackend(SamModelBackend):
    """A real ``segment_anything`` SAM with a 1-block 32-dim encoder (random weights).

    Accepts point prompts (unlike LiteMedSAM), so the refiner's point-sampling
    ``torch.Generator`` is used; runs in milliseconds.
    """

    def __init__(self, seed: int = 0, img_size: int = 128, **kwargs) -> None:
        super().__init__(build_tiny_sam(seed=seed, img_size=img_size), **kwargs)


@DATASETS.register_module(force=True)
class ToyVectorDataset(Dataset):
    """``length`` fixed random 2-vectors (seeded), as ``dict(inputs=...)``."""

    def __init__(self, length: int = 32) -> None:
        gen = torch.Generator().manual_seed(0)
        self.data = torch.randn(length, 2, generator=gen)
        self.metainfo = dict(classes=('toy', ))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, idx: int) -> dict:
        return dict(inputs=self.data[idx])


@MODELS.register_module(force=True)
class NaNScheduleModel(BaseModel):
    """A linear regressor whose loss is NaN (or inf) on chosen 1-based training calls.

    Args:
        nan_iters: Training calls (1-based) whose loss is multiplied by ``bad_value``.
        bad_value: ``nan`` or ``inf``.
    """

    def __init__(self, nan_iters: Sequence[int] = (), bad_value: float = float('nan')) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.nan_iters = set(int(i) for i in nan_iters)
        self.bad_value = float(bad_value)
        self.calls = 0

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        x = torch.stack(list(inputs)) if isinstance(inputs, (list, tuple)) else inputs
        out = self.linear(x.float())
        if mode != 'loss':
            return out
        self.calls += 1
        loss = ((out - 1.0) ** 2).mean()
        if self.calls in self.nan_iters:
            loss = loss * self.bad_value
        return dict(loss=loss)


@HOOKS.register_module(force=True)
class WeightRecorderHook(Hook):
    """Keeps a copy of ``model.linear.weight`` after every training iteration."""

    def __init__(self) -> None:
        self.weights: List[torch.Tensor] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.weights.append(model.linear.weight.detach().clone())


@HOOKS.register_module(force=True)
class RankStateDumpHook(Hook):
    """After training, every rank saves its model state, thresholds and pseudo stats.

    Written to ``{work_dir}/rank_state/rank{r}.pth`` so a test can compare ranks.
    """

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        out = osp.join(runner.work_dir, 'rank_state')
        os.makedirs(out, exist_ok=True)
        thr: Optional[torch.Tensor] = getattr(model, 'class_score_thr', None)
        torch.save(dict(state_dict={k: v.detach().cpu() for k, v in
                                    model.state_dict().items()},
                        class_score_thr=None if thr is None else thr.cpu(),
                        rng=torch.get_rng_state()),
                   osp.join(out, f'rank{get_rank()}.pth'))
