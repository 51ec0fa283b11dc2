"""Unit tests for TeacherScheduleHook with a mock runner (fast)."""
import copy
from typing import Dict
from unittest.mock import MagicMock

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MessageHub

from mmssis.engine.hooks import TeacherScheduleHook, ema_update_, freeze_teacher
from mmssis.engine.hooks.teacher_schedule_hook import CKPT_META_KEY, MESSAGE_HUB_INFO_KEY
from mmssis.registry import HOOKS


def _net() -> nn.Module:
    # BatchNorm gives float buffers (running stats) and an int one (num_batches_tracked).
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


class ToySemi(nn.Module):
    """Minimal stand-in for a SemiBaseDetector: a teacher and a student of equal shape."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.student = _net()
        self.teacher = _net()  # different init: plays the stage-1 teacher


_hub_count = 0


def _runner(model: nn.Module) -> MagicMock:
    global _hub_count
    _hub_count += 1
    runner = MagicMock()
    runner.model = model
    runner.iter = 0
    runner.message_hub = MessageHub.get_instance(f'test_teacher_schedule_{_hub_count}')
    return runner


def _state(module: nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _perturb_student(model: ToySemi, seed: int) -> None:
    """Emulate an optimizer step plus BN statistics update on the student."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
        bn = model.student[1]
        bn.running_mean.add_(torch.randn(3, generator=gen))
        bn.running_var.mul_(1.5)
        bn.num_batches_tracked += 1


def _step(hook: TeacherScheduleHook, runner: MagicMock, it: int) -> None:
    """Run iteration ``it`` (0-based) as mmengine does: train step then after_train_iter."""
    runner.iter = it
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    _perturb_student(model, seed=it)
    hook.after_train_iter(runner, batch_idx=it)


def _assert_state_equal(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_registered():
    hook = HOOKS.build(dict(type='TeacherScheduleHook', burn_in_iters=3))
    assert isinstance(hook, TeacherScheduleHook)
    assert hook.momentum == pytest.approx(0.9996)


@pytest.mark.parametrize('kwargs', [dict(burn_in_iters=-1), dict(momentum=1.5),
                                    dict(interval=0)])
def test_invalid_args(kwargs):
    with pytest.raises(ValueError):
        TeacherScheduleHook(**kwargs)


def test_before_train_freezes_and_does_not_copy():
    model = ToySemi()
    model.teacher.train()
    teacher0 = _state(model.teacher)
    runner = _runner(model)
    hook = TeacherScheduleHook(burn_in_iters=3)
    hook.before_train(runner)
    _assert_state_equal(_state(model.teacher), teacher0)
    assert all(not p.requires_grad for p in model.teacher.parameters())
    assert all(p.requires_grad for p in model.student.parameters())
    assert model.teacher.training  # train/eval mode is not touched
    assert runner.message_hub.get_info(MESSAGE_HUB_INFO_KEY)['burned_in'] is False


def test_model_wrapper_is_unwrapped():
    from mmengine.registry import MODEL_WRAPPERS

    @MODEL_WRAPPERS.register_module(name='_ToyWrapperForTeacherHook', force=True)
    class ToyWrapper(nn.Module):

        def __init__(self, module):
            super().__init__()
            self.module = module

    model = ToySemi()
    runner = _runner(ToyWrapper(model))
    hook = TeacherScheduleHook(burn_in_iters=1)
    hook.before_train(runner)
    _step(hook, runner, 0)
    _assert_state_equal(_state(model.teacher), _state(model.student))


def test_missing_teacher_raises():
    runner = _runner(nn.Module())
    with pytest.raises(AttributeError):
        TeacherScheduleHook().before_train(runner)


def test_schedule_frozen_copy_ema():
    burn_in, m = 3, 0.9
    model = ToySemi()
    teacher0 = _state(model.teacher)
    runner = _runner(model)
    hook = TeacherScheduleHook(burn_in_iters=burn_in, momentum=m)
    hook.before_train(runner)

    # Steps 1 .. burn_in-1 (iters 0 .. burn_in-2): teacher untouched while student moves.
    for it in range(burn_in - 1):
        _step(hook, runner, it)
        _assert_state_equal(_state(model.teacher), teacher0)
        assert runner.message_hub.get_scalar('train/teacher_updated').current() == 0
        assert runner.message_hub.get_scalar('train/teacher_momentum').current() == 1.0
    assert not hook.burned_in

    # After step burn_in (runner.iter == burn_in - 1): exact copy incl. buffers.
    _step(hook, runner, burn_in - 1)
    _assert_state_equal(_state(model.teacher), _state(model.student))
    assert hook.burned_in and hook.last_update_iter == burn_in
    assert runner.message_hub.get_scalar('train/teacher_updated').current() == 1
    assert runner.message_hub.get_scalar('train/teacher_momentum').current() == 0.0

    # Afterwards: EMA with teacher_new = m * teacher + (1 - m) * student.
    for it in range(burn_in, burn_in + 3):
        before_t = _state(model.teacher)
        runner.iter = it
        _perturb_student(model, seed=100 + it)
        student = _state(model.student)
        hook.after_train_iter(runner, batch_idx=it)
        after_t = _state(model.teacher)
        for k in after_t:
            if after_t[k].dtype.is_floating_point:
                expected = m * before_t[k] + (1 - m) * student[k]
                torch.testing.assert_close(after_t[k], expected, msg=k)
            else:  # num_batches_tracked is copied
                assert torch.equal(after_t[k], student[k])
        assert hook.last_update_iter == it + 1
        assert runner.message_hub.get_scalar('train/teacher_momentum').current() == m
    assert hook.num_ema_updates == 3


def test_ema_interval_and_skip_buffers():
    model = ToySemi()
    runner = _runner(model)
    hook = TeacherScheduleHook(burn_in_iters=2, momentum=0.5, interval=2, skip_buffers=True)
    hook.before_train(runner)
    for it in range(2):
        _step(hook, runner, it)  # copy after step 2
    buffers_after_copy = {k: v.clone() for k, v in model.teacher.named_buffers()}

    before = _state(model.teacher)
    _step(hook, runner, 2)  # step 3: (3 - 2) % 2 != 0 -> no update
    _assert_state_equal(_state(model.teacher), before)

    _step(hook, runner, 3)  # step 4: EMA of parameters only
    for name, p in model.teacher.named_parameters():
        expected = 0.5 * before[name] + 0.5 * dict(model.student.named_parameters())[name]
        torch.testing.assert_close(p.detach(), expected)
    for name, b in model.teacher.named_buffers():
        assert torch.equal(b, buffers_after_copy[name]), name


def test_burn_in_zero_means_ema_from_first_step_without_copy():
    m = 0.8
    model = ToySemi()
    runner = _runner(model)
    hook = TeacherScheduleHook(burn_in_iters=0, momentum=m)
    teacher0 = _state(model.teacher)
    hook.before_train(runner)
    _assert_state_equal(_state(model.teacher), teacher0)  # no copy at iteration 0
    runner.iter = 0
    _perturb_student(model, seed=0)
    student = _state(model.student)
    hook.after_train_iter(runner, batch_idx=0)
    w = model.teacher[0].weight.detach()
    torch.testing.assert_close(w, m * teacher0['0.weight'] + (1 - m) * student['0.weight'])


def test_ema_update_matches_formula_default_momentum():
    teacher, student = _net(), _net()
    t0 = _state(teacher)
    ema_update_(teacher, student, 0.9996)
    for k, v in _state(teacher).items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(v, 0.9996 * t0[k] + 0.0004 * _state(student)[k])


def test_freeze_teacher_helper():
    net = _net()
    freeze_teacher(net)
    assert not any(p.requires_grad for p in net.parameters())


def _save_load_roundtrip(hook: TeacherScheduleHook, runner: MagicMock) -> Dict:
    checkpoint = {'meta': {'iter': runner.iter + 1}}
    hook.before_save_checkpoint(runner, checkpoint)
    return copy.deepcopy(checkpoint)


def test_resume_after_burn_in_never_recopies():
    burn_in, m = 2, 0.9
    model = ToySemi()
    runner = _runner(model)
    hook = TeacherScheduleHook(burn_in_iters=burn_in, momentum=m)
    hook.before_train(runner)
    for it in range(burn_in + 1):  # copy after step 2, EMA after step 3
        _step(hook, runner, it)
    checkpoint = _save_load_roundtrip(hook, runner)
    assert checkpoint['meta'][CKPT_META_KEY] == dict(
        burned_in=True, last_update_iter=3, num_ema_updates=1, burn_in_iters=burn_in)
    model_state = copy.deepcopy(model.state_dict())

    # New process: fresh model/hook, resume (mmengine sets runner.iter after loading).
    model2 = ToySemi()
    runner2 = _runner(model2)
    hook2 = TeacherScheduleHook(burn_in_iters=burn_in, momentum=m)
    hook2.after_load_checkpoint(runner2, checkpoint)
    model2.load_state_dict(model_state)
    runner2.iter = checkpoint['meta']['iter']
    hook2.before_train(runner2)
    assert hook2.state_dict() == hook.state_dict()
    assert runner2.message_hub.get_info(MESSAGE_HUB_INFO_KEY)['burned_in'] is True

    before_t = _state(model2.teacher)
    runner2.iter = 3
    _perturb_student(model2, seed=7)
    student = _state(model2.student)
    hook2.after_train_iter(runner2, batch_idx=3)
    w = model2.teacher[0].weight.detach()
    torch.testing.assert_close(w, m * before_t['0.weight'] + (1 - m) * student['0.weight'])
    assert not torch.equal(w, student['0.weight'])  # i.e. no re-copy


def test_resume_before_burn_in_copies_at_burn_in():
    model = ToySemi()
    runner = _runner(model)
    hook = TeacherScheduleHook(burn_in_iters=4)
    hook.before_train(runner)
    _step(hook, runner, 0)
    checkpoint = _save_load_roundtrip(hook, runner)

    hook2 = TeacherScheduleHook(burn_in_iters=4)
    runner2 = _runner(model)
    hook2.after_load_checkpoint(runner2, checkpoint)
    runner2.iter = 1
    hook2.before_train(runner2)
    assert not hook2.burned_in
    teacher0 = _state(model.teacher)
    for it in (1, 2):
        _step(hook2, runner2, it)
        _assert_state_equal(_state(model.teacher), teacher0)
    _step(hook2, runner2, 3)
    _assert_state_equal(_state(model.teacher), _state(model.student))


def test_load_from_is_not_resume():
    """A checkpoint loaded with load_from (runner.iter stays 0) starts a fresh schedule."""
    hook = TeacherScheduleHook(burn_in_iters=5)
    runner = _runner(ToySemi())
    hook.after_load_checkpoint(runner, {'meta': {CKPT_META_KEY: dict(
        burned_in=True, last_update_iter=9, num_ema_updates=4, burn_in_iters=5)}})
    hook.before_train(runner)
    assert not hook.burned_in and hook.last_update_iter == -1


@pytest.mark.parametrize('resume_iter,expected', [(3, False), (4, True), (10, True)])
def test_resume_without_meta_infers_from_iter(resume_iter, expected):
    hook = TeacherScheduleHook(burn_in_iters=4)
    runner = _runner(ToySemi())
    hook.after_load_checkpoint(runner, {'meta': {}})
    runner.iter = resume_iter
    hook.before_train(runner)
    assert hook.burned_in is expected
