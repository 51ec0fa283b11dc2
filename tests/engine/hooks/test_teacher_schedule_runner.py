"""End-to-end: TeacherScheduleHook inside mmengine's Runner, with checkpoint + resume."""
import os.path as osp
import uuid

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmssis.engine  # noqa: F401  (registers TeacherScheduleHook)

BURN_IN, MOMENTUM, MAX_ITERS = 2, 0.5, 5


class ToyData(Dataset):

    def __init__(self, n: int = 32) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=gen)
        self.y = torch.randn(n, 3, generator=gen)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return dict(inputs=self.x[i], data_samples=self.y[i])


class ToySemiModel(BaseModel):
    """Teacher/student pair; only the student receives gradients."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.student = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
        self.teacher = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.student(inputs)
        if mode == 'loss':
            return dict(loss=F.mse_loss(out, data_samples))
        return out


def _runner(work_dir: str, max_iters: int, resume_from: str = None) -> Runner:
    # A resumed run starts from other random weights: only a real resume can match.
    return Runner(
        model=ToySemiModel(seed=0 if resume_from is None else 1),
        work_dir=work_dir,
        experiment_name=f'teacher_sched_{uuid.uuid4().hex[:8]}',
        train_dataloader=dict(
            dataset=ToyData(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=4,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=BURN_IN, by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[
            dict(type='TeacherScheduleHook', burn_in_iters=BURN_IN, momentum=MOMENTUM)
        ],
        default_scope='mmssis',
        randomness=dict(seed=0),
        load_from=resume_from,
        resume=resume_from is not None,
        log_level='WARNING')


def _load_ckpt(path: str) -> dict:
    # weights_only=True (torch >= 2.6 default); `import mmssis` allow-lists mmengine's meta.
    return torch.load(path, map_location='cpu')


def _assert_models_equal(runner: Runner, expected: dict) -> None:
    for k, v in runner.model.state_dict().items():
        torch.testing.assert_close(v, expected[k], msg=k)


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_runner_checkpoint_and_resume_match_uninterrupted_run(tmp_path):
    # Reference: uninterrupted 5 iterations.
    ref = _runner(str(tmp_path / 'ref'), MAX_ITERS)
    init_teacher = {k: v.clone() for k, v in ref.model.teacher.state_dict().items()}
    ref.train()
    ref_state = {k: v.clone() for k, v in ref.model.state_dict().items()}
    # Teacher moved (copy + EMA), and it is not simply the student.
    assert not torch.equal(ref_state['teacher.0.weight'], init_teacher['0.weight'])
    assert not torch.equal(ref_state['teacher.0.weight'], ref_state['student.0.weight'])

    # Checkpoint written right after the hard-copy step: teacher == student there. The
    # schedule is a function of the iteration: nothing of it is saved (the message hub only
    # mirrors it).
    ckpt = _load_ckpt(osp.join(str(tmp_path / 'ref'), f'iter_{BURN_IN}.pth'))
    assert 'teacher_schedule' not in ckpt['meta']
    assert ckpt['message_hub']['runtime_info']['teacher_schedule'] == dict(
        burned_in=True, last_update_iter=BURN_IN, num_ema_updates=0, burn_in_iters=BURN_IN)
    for k, v in ckpt['state_dict'].items():
        if k.startswith('teacher.'):
            torch.testing.assert_close(v, ckpt['state_dict']['student.' + k[8:]])

    # Interrupted right after the hard copy, then resumed: a lost schedule state would
    # copy again at step BURN_IN + 1 instead of doing EMA, and diverge from the reference.
    first = _runner(str(tmp_path / 'run'), BURN_IN)
    first.train()
    ckpt_path = osp.join(str(tmp_path / 'run'), f'iter_{BURN_IN}.pth')
    resumed = _runner(str(tmp_path / 'run'), MAX_ITERS, resume_from=ckpt_path)
    resumed.train()
    assert resumed.iter == MAX_ITERS
    _assert_models_equal(resumed, ref_state)

    # Resumed after EMA steps (iter 4): any re-copy would make teacher == student.
    late_ckpt = osp.join(str(tmp_path / 'ref'), f'iter_{2 * BURN_IN}.pth')
    late = _runner(str(tmp_path / 'late'), MAX_ITERS, resume_from=late_ckpt)
    late.train()
    _assert_models_equal(late, ref_state)


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_resume_from_checkpoint_of_the_old_stateful_hook(tmp_path):
    """Checkpoints of the former TeacherScheduleHook carry its state in
    ``meta['teacher_schedule']``; resuming one works and gives the uninterrupted run."""
    ref = _runner(str(tmp_path / 'ref'), MAX_ITERS)
    ref.train()
    ref_state = {k: v.clone() for k, v in ref.model.state_dict().items()}
    ckpt = _load_ckpt(osp.join(str(tmp_path / 'ref'), f'iter_{2 * BURN_IN}.pth'))
    ckpt['meta']['teacher_schedule'] = dict(
        burned_in=True, last_update_iter=2 * BURN_IN, num_ema_updates=BURN_IN,
        burn_in_iters=BURN_IN)
    legacy = str(tmp_path / 'legacy.pth')
    torch.save(ckpt, legacy)
    resumed = _runner(str(tmp_path / 'resumed'), MAX_ITERS, resume_from=legacy)
    resumed.train()
    assert resumed.iter == MAX_ITERS
    _assert_models_equal(resumed, ref_state)
