"""Unit tests for TeacherScheduleHook with a mock runner (fast)."""
import copy
from typing import Dict, List
from unittest.mock import MagicMock

import pytest
import torch
import torch.nn as nn
from mmdet.engine.hooks import MeanTeacherHook
from mmengine.hooks import Hook
from mmengine.logging import MessageHub

from mmssis.engine.hooks import TeacherScheduleHook, ema_update_, freeze_teacher
from mmssis.engine.hooks.teacher_schedule_hook import MESSAGE_HUB_INFO_KEY
from mmssis.registry import HOOKS

#: The old hook's checkpoint state (``meta['teacher_schedule']``), still found in old runs.
LEGACY_META_KEY = 'teacher_schedule'


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


def _info(runner: MagicMock) -> Dict:
    return runner.message_hub.get_info(MESSAGE_HUB_INFO_KEY)


def test_registered_mean_teacher_subclass():
    hook = HOOKS.build(dict(type='TeacherScheduleHook', burn_in_iters=3))
    assert isinstance(hook, TeacherScheduleHook) and isinstance(hook, MeanTeacherHook)
    assert hook.momentum == pytest.approx(0.9996)
    assert hook.priority == 'NORMAL'


def test_stateless():
    """Only the configuration is stored, and the checkpoint hooks are the no-ops of Hook."""
    hook = TeacherScheduleHook(burn_in_iters=2, momentum=0.5, interval=3)
    assert set(vars(hook)) == {'burn_in_iters', 'momentum', 'interval', 'skip_buffers',
                               'freeze_teacher'}
    assert type(hook).before_save_checkpoint is Hook.before_save_checkpoint
    assert type(hook).after_load_checkpoint is Hook.after_load_checkpoint


@pytest.mark.parametrize('kwargs', [dict(burn_in_iters=-1), dict(momentum=1.5),
                                    dict(momentum=-0.1), dict(interval=0)])
def test_invalid_args(kwargs):
    with pytest.raises(ValueError):
        TeacherScheduleHook(**kwargs)


@pytest.mark.parametrize('burn_in,interval,expected', [
    # update after steps 1..9: c = hard copy, e = EMA, . = none
    (3, 1, '..ceeeeee'),
    (3, 2, '..c.e.e.e'),
    (0, 1, 'eeeeeeeee'),
    (0, 3, '..e..e..e'),
    (1, 4, 'c...e...e'),
])
def test_update_at(burn_in, interval, expected):
    hook = TeacherScheduleHook(burn_in_iters=burn_in, interval=interval)
    got = ''.join({'copy': 'c', 'ema': 'e', None: '.'}[hook.update_at(s)] for s in range(1, 10))
    assert got == expected
    for step in range(0, 10):
        updates = [s for s in range(1, step + 1) if hook.update_at(s)]
        assert hook.last_update_iter(step) == (updates[-1] if updates else -1)
        assert hook.num_ema_updates(step) == sum(hook.update_at(s) == 'ema'
                                                for s in range(1, step + 1))
        assert hook.schedule_state(step) == dict(
            burned_in=step >= burn_in, last_update_iter=hook.last_update_iter(step),
            num_ema_updates=hook.num_ema_updates(step), burn_in_iters=burn_in)


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
    assert _info(runner) == dict(burned_in=False, last_update_iter=-1, num_ema_updates=0,
                                 burn_in_iters=3)


def test_freeze_teacher_off():
    model = ToySemi()
    TeacherScheduleHook(freeze_teacher=False).before_train(_runner(model))
    assert all(p.requires_grad for p in model.teacher.parameters())


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


def test_teacher_student_mismatch_raises():
    model = ToySemi()
    model.teacher = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ValueError, match='differ in state_dict keys'):
        TeacherScheduleHook().before_train(_runner(model))


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
    assert _info(runner)['burned_in'] is False

    # After step burn_in (runner.iter == burn_in - 1): exact copy incl. buffers.
    _step(hook, runner, burn_in - 1)
    _assert_state_equal(_state(model.teacher), _state(model.student))
    assert _info(runner) == dict(burned_in=True, last_update_iter=burn_in, num_ema_updates=0,
                                 burn_in_iters=burn_in)
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
        assert _info(runner)['last_update_iter'] == it + 1
        assert runner.message_hub.get_scalar('train/teacher_momentum').current() == m
        assert runner.message_hub.get_scalar('train/teacher_updated').current() == 1
    assert _info(runner)['num_ema_updates'] == 3


def test_ema_interval_and_skip_buffers():
    model = ToySemi()
    runner = _runner(model)
    hook = TeacherScheduleHook(burn_in_iters=2, momentum=0.5, interval=2, skip_buffers=True)
    hook.before_train(runner)
    for it in range(2):
        _step(hook, runner, it)  # copy after step 2, buffers included
    _assert_state_equal(_state(model.teacher), _state(model.student))
    buffers_after_copy = {k: v.clone() for k, v in model.teacher.named_buffers()}

    before = _state(model.teacher)
    _step(hook, runner, 2)  # step 3: (3 - 2) % 2 != 0 -> no update
    _assert_state_equal(_state(model.teacher), before)
    assert runner.message_hub.get_scalar('train/teacher_updated').current() == 0

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


def test_momentum_update_keeps_mmdet_convention():
    """The inherited method name keeps mmdet's meaning: ``momentum`` weighs the student."""
    model = ToySemi()
    t0, s0 = _state(model.teacher), _state(model.student)
    TeacherScheduleHook().momentum_update(model, 0.25)
    torch.testing.assert_close(model.teacher[0].weight.detach(),
                               0.75 * t0['0.weight'] + 0.25 * s0['0.weight'])


def test_freeze_teacher_helper():
    net = _net()
    freeze_teacher(net)
    assert not any(p.requires_grad for p in net.parameters())


def _train(hook_kwargs: Dict, its: range, model: ToySemi = None) -> ToySemi:
    """Iterations ``its`` in a fresh process: new hook and runner, ``before_train`` at
    ``its.start`` (mmengine sets ``runner.iter`` from the checkpoint before that)."""
    model = model or ToySemi()
    runner = _runner(model)
    hook = TeacherScheduleHook(**hook_kwargs)
    runner.iter = its.start
    hook.before_train(runner)
    for it in its:
        _step(hook, runner, it)
    return model


@pytest.mark.parametrize('burn_in,interval', [(3, 1), (3, 2), (0, 2)])
def test_resume_at_any_iter_matches_uninterrupted_run(burn_in, interval):
    """Stopped after any step and resumed from the model state alone: bit-identical."""
    kwargs = dict(burn_in_iters=burn_in, momentum=0.7, interval=interval)
    total = 8
    ref = _state(_train(kwargs, range(total)))
    for stop in range(1, total):
        first = _train(kwargs, range(stop))
        resumed = ToySemi()
        resumed.load_state_dict(copy.deepcopy(first.state_dict()))
        _assert_state_equal(_state(_train(kwargs, range(stop, total), resumed)), ref)


def test_resume_after_burn_in_continues_ema_without_recopy():
    burn_in, m = 2, 0.9
    model = _train(dict(burn_in_iters=burn_in, momentum=m), range(burn_in + 1))
    model_state = copy.deepcopy(model.state_dict())  # copy after step 2, EMA after step 3

    # New process: fresh model/hook, resume (mmengine sets runner.iter after loading).
    model2 = ToySemi()
    model2.load_state_dict(model_state)
    runner2 = _runner(model2)
    hook2 = TeacherScheduleHook(burn_in_iters=burn_in, momentum=m)
    runner2.iter = burn_in + 1
    hook2.before_train(runner2)
    assert _info(runner2) == dict(burned_in=True, last_update_iter=3, num_ema_updates=1,
                                  burn_in_iters=burn_in)

    before_t = _state(model2.teacher)
    runner2.iter = 3
    _perturb_student(model2, seed=7)
    student = _state(model2.student)
    hook2.after_train_iter(runner2, batch_idx=3)
    w = model2.teacher[0].weight.detach()
    torch.testing.assert_close(w, m * before_t['0.weight'] + (1 - m) * student['0.weight'])
    assert not torch.equal(w, student['0.weight'])  # i.e. no re-copy


def test_resume_before_burn_in_copies_at_burn_in():
    model = _train(dict(burn_in_iters=4), range(1))
    runner2 = _runner(model)
    hook2 = TeacherScheduleHook(burn_in_iters=4)
    runner2.iter = 1
    hook2.before_train(runner2)
    assert _info(runner2)['burned_in'] is False
    teacher0 = _state(model.teacher)
    for it in (1, 2):
        _step(hook2, runner2, it)
        _assert_state_equal(_state(model.teacher), teacher0)
    _step(hook2, runner2, 3)
    _assert_state_equal(_state(model.teacher), _state(model.student))


@pytest.mark.parametrize('runner_iter', [0, 3])
def test_legacy_checkpoint_meta_is_ignored(runner_iter):
    """Checkpoints of the old stateful hook carry ``meta['teacher_schedule']``: loading one
    (``load_from`` at iter 0 or a resume) works and the schedule follows ``runner.iter``."""
    hook = TeacherScheduleHook(burn_in_iters=5)
    runner = _runner(ToySemi())
    checkpoint = {'meta': {LEGACY_META_KEY: dict(
        burned_in=True, last_update_iter=9, num_ema_updates=4, burn_in_iters=5)}}
    hook.after_load_checkpoint(runner, checkpoint)
    runner.iter = runner_iter
    hook.before_train(runner)
    assert _info(runner) == hook.schedule_state(runner_iter)
    assert _info(runner)['burned_in'] is False
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint['meta'][LEGACY_META_KEY]['last_update_iter'] == 9  # untouched


@pytest.mark.parametrize('resume_iter,expected', [(3, False), (4, True), (10, True)])
def test_resume_burned_in_follows_iter(resume_iter, expected):
    hook = TeacherScheduleHook(burn_in_iters=4)
    runner = _runner(ToySemi())
    runner.iter = resume_iter
    hook.before_train(runner)
    assert _info(runner)['burned_in'] is expected


def test_momentum_extremes():
    """momentum=1: the teacher stays the hard copy; momentum=0: it follows the student
    (integer buffers such as ``num_batches_tracked`` are copied on every EMA step)."""
    for m, follows in ((1.0, False), (0.0, True)):
        model = _train(dict(burn_in_iters=1, momentum=m), range(3))
        after_copy = _train(dict(burn_in_iters=1, momentum=m), range(1))
        target = _state(model.student) if follows else _state(after_copy.student)
        teacher = _state(model.teacher)
        _assert_state_equal({k: v for k, v in teacher.items() if v.is_floating_point()},
                            {k: v for k, v in target.items() if v.is_floating_point()})
        assert torch.equal(teacher['1.num_batches_tracked'],
                           model.student.state_dict()['1.num_batches_tracked'])
