"""R8: NaN/inf losses are skipped (weights untouched); M in a row stop the run with a
checkpoint of the last good state (the ``tools/train.py`` path)."""
import math
import os.path as osp
import subprocess

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.runner import Runner
from torch import nn

from mmssis.engine.optim_wrappers import (SKIPPED_SCALAR, NonFiniteLossError,
                                          SkipNonFiniteAmpOptimWrapper,
                                          SkipNonFiniteOptimWrapper, save_nonfinite_checkpoint)
from mmssis.registry import OPTIM_WRAPPERS
from rel_configs import PYTHON, REPO, subprocess_env
from rel_plugins import WeightRecorderHook


def _wrapper(max_consecutive=3, **kwargs):
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    wrapper = SkipNonFiniteOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        max_consecutive=max_consecutive, **kwargs)
    return model, wrapper


def _loss(model, bad=None):
    loss = ((model(torch.ones(4, 2)) - 3.0)**2).mean()
    return loss * bad if bad is not None else loss


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_registered():
    assert OPTIM_WRAPPERS.get('SkipNonFiniteOptimWrapper') is SkipNonFiniteOptimWrapper
    assert OPTIM_WRAPPERS.get('SkipNonFiniteAmpOptimWrapper') is SkipNonFiniteAmpOptimWrapper
    assert issubclass(SkipNonFiniteOptimWrapper, OptimWrapper)
    assert issubclass(SkipNonFiniteAmpOptimWrapper, AmpOptimWrapper)
    with pytest.raises(ValueError, match='max_consecutive'):
        _wrapper(max_consecutive=0)


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_fewer_than_m_bad_losses_are_skipped(bad, log_records):
    model, wrapper = _wrapper(max_consecutive=3)
    hub = MessageHub.get_current_instance()
    wrapper.update_params(_loss(model))
    good = _weights(model)
    for _ in range(2):  # k = 2 < M = 3
        wrapper.update_params(_loss(model, bad))
        assert all(torch.equal(a, b) for a, b in zip(good, _weights(model)))
        assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    assert wrapper.consecutive_skipped == 2 and wrapper.total_skipped == 2
    assert hub.get_scalar(SKIPPED_SCALAR).current() == 2
    assert sum('non-finite loss' in m for m in log_records) == 2
    wrapper.update_params(_loss(model))  # a good step trains and resets the count
    assert not torch.equal(good[0], model.weight)
    assert torch.isfinite(model.weight).all()
    assert wrapper.consecutive_skipped == 0 and wrapper.total_skipped == 2
    for _ in range(2):  # counting restarted: 2 more do not raise either
        wrapper.update_params(_loss(model, bad))


def test_m_consecutive_bad_losses_raise():
    model, wrapper = _wrapper(max_consecutive=3)
    wrapper.update_params(_loss(model))
    for _ in range(2):
        wrapper.update_params(_loss(model, float('nan')))
    with pytest.raises(NonFiniteLossError) as err:
        wrapper.update_params(_loss(model, float('nan')))
    msg = str(err.value)
    assert '3 consecutive non-finite' in msg and 'loss=nan' in msg
    assert 'learning rate' in msg and 'data' in msg and 'AMP' in msg
    assert err.value.consecutive == 3 and math.isnan(err.value.last_loss)


def test_non_finite_gradient_of_finite_loss_is_skipped():
    model, wrapper = _wrapper(max_consecutive=5, clip_grad=dict(max_norm=1.0))
    before = _weights(model)
    # sqrt'(0) = inf: the loss is 0 (finite) but the gradients are NaN.
    loss = (model.weight * 0).abs().sqrt().sum()
    assert torch.isfinite(loss)
    wrapper.update_params(loss)
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model)))
    assert wrapper.total_skipped == 1
    # Without the gradient check the NaN reaches the weights.
    model2, plain = _wrapper(max_consecutive=5, check_grads=False)
    plain.update_params((model2.weight * 0).abs().sqrt().sum())
    assert torch.isnan(model2.weight).any()


def test_skip_count_survives_state_dict_round_trip():
    model, wrapper = _wrapper()
    wrapper.update_params(_loss(model, float('nan')))
    state = wrapper.state_dict()
    assert state['nonfinite_skipped'] == 1
    _, fresh = _wrapper()
    fresh.load_state_dict(state)
    assert fresh.total_skipped == 1 and fresh.consecutive_skipped == 0


def test_amp_variant_skips_non_finite_loss(monkeypatch):
    # AmpOptimWrapper insists on an accelerator; on CPU the GradScaler just disables itself.
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_mod
    monkeypatch.setattr(amp_mod, 'is_cuda_available', lambda: True)
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    wrapper = SkipNonFiniteAmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), max_consecutive=2)
    before = _weights(model)
    wrapper.update_params(_loss(model, float('inf')))
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model)))
    with pytest.raises(NonFiniteLossError):
        wrapper.update_params(_loss(model, float('nan')))


# ------------------------------------------------------------------ through a Runner
def _runner(tmp_path, nan_iters, max_iters=6, max_consecutive=3):
    recorder = WeightRecorderHook()
    runner = Runner(
        model=dict(type='NaNScheduleModel', nan_iters=nan_iters),
        work_dir=str(tmp_path),
        train_dataloader=dict(dataset=dict(type='ToyVectorDataset'),
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              batch_size=2, num_workers=0),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=10**9),
        optim_wrapper=dict(type='SkipNonFiniteOptimWrapper', max_consecutive=max_consecutive,
                           optimizer=dict(type='SGD', lr=0.05)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=10**9,
                                           by_epoch=False, save_last=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[recorder],
        default_scope='mmssis',
        randomness=dict(seed=0),
        experiment_name=f'nonfinite_{tmp_path.name}')
    return runner, recorder


@pytest.mark.slow
def test_runner_continues_after_fewer_than_m_bad_iterations(tmp_path):
    runner, rec = _runner(tmp_path, nan_iters=(3, 4))
    runner.train()
    assert runner.iter == 6 and len(rec.weights) == 6
    # Iterations 3 and 4 left the weights of iteration 2; 5 and 6 trained again.
    assert torch.equal(rec.weights[2], rec.weights[1])
    assert torch.equal(rec.weights[3], rec.weights[1])
    assert not torch.equal(rec.weights[4], rec.weights[3])
    assert all(torch.isfinite(w).all() for w in rec.weights)
    assert runner.message_hub.get_scalar(SKIPPED_SCALAR).current() == 2


@pytest.mark.slow
def test_runner_stops_after_m_bad_iterations_and_saves_checkpoint(tmp_path, capsys):
    runner, rec = _runner(tmp_path, nan_iters=(3, 4, 5))
    # What tools/train.py does around runner.train().
    with pytest.raises(NonFiniteLossError) as err:
        runner.train()
    code = save_nonfinite_checkpoint(runner, err.value)
    assert code == 1
    path = osp.join(str(tmp_path), 'nonfinite_iter_4.pth')
    assert osp.isfile(path) and path in capsys.readouterr().err
    ckpt = torch.load(path, weights_only=True)
    assert ckpt['meta']['iter'] == 4  # completed iterations: resuming continues at 5
    # The saved weights are those of the last good update (iteration 2).
    assert torch.equal(ckpt['state_dict']['linear.weight'], rec.weights[1])
    assert ckpt['optimizer']['nonfinite_skipped'] == 3


@pytest.mark.slow
def test_train_py_exits_nonzero_with_checkpoint(tmp_path):
    cfg_path = tmp_path / 'nan_cfg.py'
    cfg_path.write_text(
        "custom_imports = dict(imports=['rel_plugins'], allow_failed_imports=False)\n"
        "default_scope = 'mmssis'\n"
        "model = dict(type='NaNScheduleModel', nan_iters=[2, 3])\n"
        "train_dataloader = dict(dataset=dict(type='ToyVectorDataset'), batch_size=2,\n"
        "    num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False))\n"
        "train_cfg = dict(by_epoch=False, max_iters=5)\n"
        "optim_wrapper = dict(type='SkipNonFiniteOptimWrapper', max_consecutive=2,\n"
        "    optimizer=dict(type='SGD', lr=0.05))\n"
        "default_hooks = dict(logger=dict(type='LoggerHook', interval=1))\n")
    work = tmp_path / 'work'
    proc = subprocess.run([PYTHON, osp.join(REPO, 'tools', 'train.py'), str(cfg_path),
                           '--work-dir', str(work)], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    ckpt = work / 'nonfinite_iter_2.pth'
    assert ckpt.is_file()
    assert '2 consecutive non-finite' in proc.stderr and str(ckpt) in proc.stderr
