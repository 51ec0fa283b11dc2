"""Derived random streams of the S4M parts built from configs/_base_/s4m_parts.py: a function
of (seed, part, step, rank, image), with no state carried from one draw to the next."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope

import mmssis.utils.rank_seed as rank_seed_module
from mmssis.registry import MODELS
from mmssis.sam import SamModelBackend
from mmssis.sam.prompts import sample_points_from_logits
from mmssis.testing import build_tiny_sam
from mmssis.utils.rank_seed import derived_seed, reseed_global_torch, train_step


@pytest.fixture(scope='module')
def parts_cfg():
    return Config.fromfile('configs/_base_/s4m_parts.py')


@pytest.fixture
def at_step():
    hub = MessageHub.get_current_instance()
    saved = hub.get_info('iter')

    def set_step(step):
        hub.update_info('iter', step)
    yield set_step
    hub.update_info('iter', saved if saved is not None else 0)


def _parts(cfg, rank, monkeypatch):
    monkeypatch.setattr(rank_seed_module, 'get_dist_info', lambda: (rank, 4))
    with DefaultScope.overwrite_default_scope('mmssis'):
        aug = MODELS.build(copy.deepcopy(cfg.s4m_student_augment))
        mixer = MODELS.build(copy.deepcopy(cfg.s4m_arp_dynamic))
        # The paper's refiner settings (seed included) around a tiny random SAM.
        refiner = MODELS.build(dict(copy.deepcopy(cfg.s4m_refiner),
                                    backend=SamModelBackend(build_tiny_sam(img_size=64))))
    return aug, mixer, refiner


def _draws(parts, steps, at_step):
    """Photometric draws, ARP pairings and SAM point draws at each of ``steps``."""
    aug, mixer, refiner = parts
    image = torch.full((3, 16, 16), 0.5)
    photometric, pairings, points = [], [], []
    for step in steps:
        at_step(step)
        photometric.append(aug.augment_image(image))
        pairings.append(mixer.rng.permutation(8)[:4].tolist())
        pts, _ = sample_points_from_logits(torch.zeros(4, 16, 16), 3, logit_thr=None,
                                           generator=refiner.point_generator('a.jpg', 0))
        points.append(pts)
    return photometric, pairings, points


def _same(x, y):
    return all(torch.equal(a, b) if torch.is_tensor(a) else a == b for a, b in zip(x, y))


def test_each_rank_draws_its_own_stream(parts_cfg, monkeypatch, at_step):
    steps = list(range(20))
    d0 = _draws(_parts(parts_cfg, 0, monkeypatch), steps, at_step)
    d1 = _draws(_parts(parts_cfg, 1, monkeypatch), steps, at_step)
    d0b = _draws(_parts(parts_cfg, 0, monkeypatch), steps, at_step)
    assert all(_same(x, y) for x, y in zip(d0, d0b))  # same rank and seed: same draws
    for x, y in zip(d0, d1):  # another rank: other photometric draws, pairings, points
        assert sum(not _same([a], [b]) for a, b in zip(x, y)) >= 15


def test_a_step_draws_the_same_whatever_came_before(parts_cfg, monkeypatch, at_step):
    """What --resume needs: step 7's draws do not depend on steps 0-6 having run, nor on
    extra draws (a measurement) in between."""
    parts = _parts(parts_cfg, 0, monkeypatch)
    full = _draws(parts, range(10), at_step)
    resumed = _draws(_parts(parts_cfg, 0, monkeypatch), range(7, 10), at_step)
    for x, y in zip(full, resumed):
        assert _same(x[7:], y)
    at_step(7)
    for _ in range(5):  # extra draws at step 7 (e.g. a calibration measurement)
        parts[1].rng.random(3)
    again = _draws(parts, [7], at_step)
    assert all(_same(x[7:8], y) for x, y in zip(full, again))
    # different steps draw differently
    assert sum(not _same([a], [b]) for a, b in zip(full[1][:-1], full[1][1:])) >= 7


def test_derived_seed_keys():
    base = derived_seed(7, 'arp', step=3, rank=0)
    assert base == derived_seed(7, 'arp', step=3, rank=0)
    others = {derived_seed(7, 'arp', step=3, rank=1), derived_seed(7, 'arp', step=4, rank=0),
              derived_seed(8, 'arp', step=3, rank=0), derived_seed(7, 'sam', step=3, rank=0),
              derived_seed(7, 'arp', 'img.png', step=3, rank=0)}
    assert base not in others and len(others) == 5
    assert 0 <= base < 2**63


def test_train_step_reads_the_runtime_info(at_step):
    at_step(42)
    assert train_step() == 42


def test_global_torch_reseeded_from_the_step(at_step):
    at_step(5)
    reseed_global_torch(0)
    a = torch.rand(3)
    torch.rand(100)
    reseed_global_torch(0)
    assert torch.equal(a, torch.rand(3))
    at_step(6)
    reseed_global_torch(0)
    assert not torch.equal(a, torch.rand(3))


def test_distillation_points_differ_between_ranks(monkeypatch, at_step):
    from mmssis.models.losses.structural_distill import SamStructuralDistiller
    at_step(3)
    gens = []
    for rank in (0, 1, 0):
        monkeypatch.setattr(rank_seed_module, 'get_dist_info', lambda r=rank: (r, 2))
        dist = SamStructuralDistiller(sam=object(), sam_input='view', cache_targets=False)
        gens.append(torch.rand(8, generator=dist._generator('img.png')))
    assert torch.equal(gens[0], gens[2]) and not torch.equal(gens[0], gens[1])
