"""Batch recipes: every paper config states the global batch its learning rate belongs to,
`--keep-global-batch` realises it on other GPU counts or refuses, and the 1-GPU recipe is a
config that passes the sampler check."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmssis.utils.batch_recipe import keep_global_batch
from mmssis.utils.sampler_check import SemiSamplerConfigError, check_semi_sampler

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
S4M = osp.join(REPO, 'configs', 's4m')
PAPER = sorted(p for p in glob.glob(osp.join(S4M, '*.py')) if not p.endswith('-1gpu.py'))


def _per_gpu(cfg) -> int:
    return cfg.train_dataloader.batch_size


@pytest.mark.parametrize('path', PAPER, ids=osp.basename)
def test_recipe_batch_matches_the_recipe_gpus(path):
    cfg = Config.fromfile(path)
    assert cfg.auto_scale_lr.base_batch_size == cfg.recipe_gpus * _per_gpu(cfg)
    # the recipe itself passes the sampler check (stage 2; stage 1 has no multi-source)
    check_semi_sampler(cfg, world_size=cfg.recipe_gpus)


@pytest.mark.parametrize('gpus', [1, 2, 4, 8])
def test_keep_global_batch_realises_the_recipe_or_refuses(gpus):
    cfg = Config.fromfile(osp.join(S4M, 's4m_mask2former_r50_368k_semi-0.05-coco.py'))
    base, ratio = cfg.auto_scale_lr.base_batch_size, list(cfg.train_dataloader.sampler.source_ratio)
    assert base == 24 and ratio == [3, 3]
    if gpus == 8:  # 3 images per GPU cannot be 1:1
        with pytest.raises(SemiSamplerConfigError, match=r'GPU counts that can: \[1, 2, 3, 4, 6'):
            keep_global_batch(cfg, gpus)
        return
    out = keep_global_batch(cfg, gpus)
    assert out['batch_size'] * gpus == base
    assert sum(out['source_ratio']) == out['batch_size'] and len(set(out['source_ratio'])) == 1
    assert check_semi_sampler(cfg, world_size=gpus) == out['source_ratio']
    assert cfg.optim_wrapper.optimizer.lr == 1e-4  # unchanged: same global batch


def test_keep_global_batch_supervised_stage():
    cfg = Config.fromfile(osp.join(S4M, 'mask-rcnn_r50_fpn_90k_sup-0.1-coco.py'))
    assert keep_global_batch(cfg, 4) == dict(batch_size=4, source_ratio=None, global_batch=16)
    with pytest.raises(SemiSamplerConfigError, match='does not split over 3'):
        keep_global_batch(Config.fromfile(osp.join(S4M, 'mask-rcnn_r50_fpn_90k_sup-0.1-coco.py')),
                          3)


def test_the_one_gpu_recipe_is_a_real_config():
    cfg = Config.fromfile(osp.join(S4M, 's4m_mask2former_r50_368k_semi-0.05-coco-1gpu.py'))
    # The official per-GPU layout (3 + 3), so ARP mixes 2 of 3 as on the recipe's GPUs.
    assert check_semi_sampler(cfg, world_size=1) == [3, 3]
    assert cfg.auto_scale_lr.enable and cfg.auto_scale_lr.base_batch_size == 24
    # mmengine's linear rule then trains at 6 / 24 of the recipe learning rate
    real = 1 * cfg.train_dataloader.batch_size
    assert real / cfg.auto_scale_lr.base_batch_size == pytest.approx(1 / 4)
