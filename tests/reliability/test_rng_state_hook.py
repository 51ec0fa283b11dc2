"""RngStateHook pieces (fast, in-process); the end-to-end check is test_exact_resume.py."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mmssis.engine.hooks.rng_state_hook import (CKPT_META_KEY, RngStateHook,
                                                 capture_generator, capture_global_rng,
                                                 restore_generator, restore_global_rng)
from mmssis.registry import HOOKS


def _draws():
    return (random.random(), float(np.random.rand()), float(torch.rand(())))


def _round_trip(obj, tmp_path):
    """Through a checkpoint file loaded like mmssis loads them (weights_only=True)."""
    path = tmp_path / 'state.pth'
    torch.save(obj, path)
    return torch.load(path, weights_only=True)


def test_global_states_round_trip_through_weights_only_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    np.random.randn()  # leaves a cached Gaussian in numpy's legacy state
    state = _round_trip(capture_global_rng(), tmp_path)
    expected = _draws()
    random.seed(2)
    np.random.seed(2)
    torch.manual_seed(2)
    restore_global_rng(state)
    assert _draws() == expected


@pytest.mark.parametrize('make', [
    lambda: torch.Generator().manual_seed(3),
    lambda: np.random.default_rng(3),
    lambda: np.random.RandomState(3),
    lambda: random.Random(3),
], ids=['torch', 'numpy_generator', 'numpy_random_state', 'python'])
def test_component_generator_round_trip(make, tmp_path):

    def draw(gen):
        if isinstance(gen, torch.Generator):
            return float(torch.rand((), generator=gen))
        return float(gen.random() if not isinstance(gen, np.random.RandomState) else
                     gen.rand())

    owner = SimpleNamespace(gen=make())
    draw(owner.gen)
    saved = _round_trip(capture_generator(owner.gen), tmp_path)
    expected = draw(owner.gen)
    owner.gen = make()  # a freshly built component (seeded from its config)
    restore_generator(owner, 'gen', saved)
    assert draw(owner.gen) == expected


def test_lazy_generator_created_or_reset():
    saved = capture_generator(np.random.default_rng(5))
    owner = SimpleNamespace(_rng=None)  # ARP's mixer before its first call
    restore_generator(owner, '_rng', saved)
    assert owner._rng.random() == np.random.default_rng(5).random()
    restore_generator(owner, '_rng', None)  # saved before the first call: lazy again
    assert owner._rng is None
    with pytest.raises(ValueError, match='bit generator'):
        restore_generator(owner, '_rng', dict(kind='numpy_generator',
                                              state=dict(bit_generator='os')))


class _Loop:
    """Stands for IterBasedTrainLoop: a data iterator whose batches draw global RNG."""

    def __init__(self):
        self.dataloader_iterator = iter(self._batches())

    @staticmethod
    def _batches():
        while True:
            yield float(np.random.rand())  # 'augmentation'


def _runner(model, loop, it=0):
    return SimpleNamespace(model=model, train_loop=loop, iter=it, epoch=0, hooks=[],
                           train_dataloader=SimpleNamespace(num_workers=0))


def _model():
    return SimpleNamespace(
        sam_refiner=SimpleNamespace(refiner=SimpleNamespace(
            generator=torch.Generator().manual_seed(0))),
        instance_mixer=SimpleNamespace(_rng=None))


def test_resume_restores_right_before_first_untrained_batch():
    hook = HOOKS.build(dict(type='RngStateHook'))
    assert isinstance(hook, RngStateHook)
    # Uninterrupted run: 2 iterations (batch + 'forward' draws), save, iteration 3.
    np.random.seed(0)
    torch.manual_seed(0)
    model, loop = _model(), _Loop()
    for _ in range(2):
        next(loop.dataloader_iterator)
        torch.rand(3)
        torch.rand(2, generator=model.sam_refiner.refiner.generator)
        model.instance_mixer._rng = model.instance_mixer._rng or np.random.default_rng(7)
        model.instance_mixer._rng.random()
    ckpt = {}
    hook.before_save_checkpoint(_runner(model, loop, it=1), ckpt)
    batch3 = next(loop.dataloader_iterator)
    fwd3 = (torch.rand(3), torch.rand(2, generator=model.sam_refiner.refiner.generator),
            model.instance_mixer._rng.random())

    # Resumed process: freshly seeded and built; the loop re-reads batches 1-2.
    np.random.seed(0)
    torch.manual_seed(0)
    model, loop = _model(), _Loop()
    runner = _runner(model, loop, it=2)
    hook = RngStateHook()
    hook.after_load_checkpoint(runner, ckpt)
    hook.before_train(runner)
    for _ in range(2):
        next(loop.dataloader_iterator)  # the skip
    assert next(loop.dataloader_iterator) == batch3
    assert not hasattr(loop.dataloader_iterator, '_skip'), 'wrapper removed after use'
    hook.before_train_iter(runner, 2)  # nothing left to do
    assert torch.equal(torch.rand(3), fwd3[0])
    assert torch.equal(torch.rand(2, generator=model.sam_refiner.refiner.generator), fwd3[1])
    assert model.instance_mixer._rng.random() == fwd3[2]


def test_load_from_and_world_size_change_do_not_restore():
    model, loop = _model(), _Loop()
    ckpt = {}
    RngStateHook().before_save_checkpoint(_runner(model, loop), ckpt)
    assert len(ckpt['meta'][CKPT_META_KEY]['ranks']) == 1

    hook = RngStateHook()
    fresh = _runner(_model(), _Loop(), it=0)  # load_from: iter stays 0
    hook.after_load_checkpoint(fresh, ckpt)
    hook.before_train(fresh)
    assert hook._pending is None and isinstance(fresh.train_loop.dataloader_iterator,
                                                type(iter(_Loop._batches())))
    two_ranks = dict(meta={CKPT_META_KEY: dict(ckpt['meta'][CKPT_META_KEY],
                                               ranks=ckpt['meta'][CKPT_META_KEY]['ranks'] * 2)})
    resumed = _runner(_model(), _Loop(), it=3)
    hook.after_load_checkpoint(resumed, two_ranks)
    hook.before_train(resumed)  # 2 saved ranks, 1 running: warn, keep seeded state
    assert hook._pending is None


def test_loop_without_iterator_restores_at_first_iteration():
    model = _model()
    ckpt = {}
    np.random.seed(0)
    RngStateHook().before_save_checkpoint(_runner(model, _Loop()), ckpt)
    expected = float(np.random.rand())
    hook = RngStateHook()
    runner = _runner(_model(), SimpleNamespace(), it=5)  # e.g. an epoch-based loop
    hook.after_load_checkpoint(runner, ckpt)
    hook.before_train(runner)
    np.random.seed(123)
    hook.before_train_iter(runner, 5)
    assert float(np.random.rand()) == expected
