"""Per-rank random streams of the stage-2 S4M parts built from configs/_base_/s4m_parts.py."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmssis.utils.rank_seed as rank_seed_module
from mmssis.registry import MODELS
from mmssis.sam import SamModelBackend
from mmssis.sam.prompts import sample_points_from_logits
from mmssis.testing import build_tiny_sam
from mmssis.utils.rank_seed import rank_seed


@pytest.fixture(scope='module')
def parts_cfg():
    return Config.fromfile('configs/_base_/s4m_parts.py')


def _draws(cfg, rank, monkeypatch):
    """Photometric draws, ARP pairings and SAM point draws of parts built on ``rank``."""
    monkeypatch.setattr(rank_seed_module, 'get_dist_info', lambda: (rank, 4))
    with DefaultScope.overwrite_default_scope('mmssis'):
        aug = MODELS.build(copy.deepcopy(cfg.s4m_student_augment))
        mixer = MODELS.build(copy.deepcopy(cfg.s4m_arp_dynamic))
        # The paper's refiner settings (seed included) around a tiny random SAM.
        refiner = MODELS.build(dict(copy.deepcopy(cfg.s4m_refiner.refiner),
                                    backend=SamModelBackend(build_tiny_sam(img_size=64))))
    image = torch.full((3, 16, 16), 0.5)
    photometric = [aug.augment_image(image) for _ in range(20)]
    pairings = [mixer.rng.permutation(8)[:4].tolist() for _ in range(20)]
    logits = torch.zeros(20, 16, 16)
    points, _ = sample_points_from_logits(logits, 3, generator=refiner.generator,
                                          logit_thr=None)
    return photometric, pairings, points


def test_each_rank_draws_its_own_stream(parts_cfg, monkeypatch):
    p0, a0, s0 = _draws(parts_cfg, 0, monkeypatch)
    p1, a1, s1 = _draws(parts_cfg, 1, monkeypatch)
    p0b, a0b, s0b = _draws(parts_cfg, 0, monkeypatch)
    # Same rank and seed: the same draws.
    assert all(torch.equal(x, y) for x, y in zip(p0, p0b))
    assert a0 == a0b and torch.equal(s0, s0b)
    # Another rank: different photometric draws, pairings and refinement points.
    assert sum(not torch.equal(x, y) for x, y in zip(p0, p1)) >= 15
    assert sum(x != y for x, y in zip(a0, a1)) >= 15
    assert not torch.equal(s0, s1)


def test_rank_zero_keeps_the_config_seed():
    assert rank_seed(7, rank=0) == 7
    seeds = {rank_seed(7, rank=r) for r in range(8)}
    assert len(seeds) == 8 and rank_seed(7, rank=3) == rank_seed(7, rank=3)
    assert rank_seed(7, rank=3) != rank_seed(8, rank=3)


def test_distillation_points_differ_between_ranks(monkeypatch):
    from mmssis.models.losses.structural_distill import SamStructuralDistiller
    gens = []
    for rank in (0, 1, 0):
        monkeypatch.setattr(rank_seed_module, 'get_dist_info', lambda r=rank: (r, 2))
        dist = SamStructuralDistiller(sam=object(), sam_input='view', cache_targets=False)
        gens.append(torch.rand(8, generator=dist._generator('img.png')))
    assert torch.equal(gens[0], gens[2]) and not torch.equal(gens[0], gens[1])
