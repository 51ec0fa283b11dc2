"""R9/R10 checkpoint-file faults: a checkpoint cut short by a kill during ``torch.save``.

Safe loading (allow-list, refused pickles, missing files) is tested in
tests/utils/test_checkpoint.py.
"""
import pytest
import torch
from mmengine.runner import Runner

from mmssis.utils import load_checkpoint_file

import rel_plugins  # noqa: F401,I001 (registers the toy model and dataset)


def _toy_runner(work_dir, max_iters, resume=False):
    return Runner(
        model=dict(type='NaNScheduleModel'),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=dict(type='ToyVectorDataset'),
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              batch_size=2, num_workers=0),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=10**9),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
        default_scope='mmssis', randomness=dict(seed=0), resume=resume,
        experiment_name=f'ckpt_faults_{max_iters}_{resume}_{id(work_dir)}')


def _truncate(src, dst):
    data = src.read_bytes()
    dst.write_bytes(data[:len(data) // 2])


@pytest.mark.slow
def test_auto_resume_ignores_checkpoint_cut_short_by_a_kill(tmp_path):
    _toy_runner(tmp_path, max_iters=2).train()
    # A kill during the save of iteration 3: the file exists but is cut short, and
    # CheckpointHook had not yet pointed `last_checkpoint` at it (it does so after saving).
    _truncate(tmp_path / 'iter_2.pth', tmp_path / 'iter_3.pth')
    assert (tmp_path / 'last_checkpoint').read_text().endswith('iter_2.pth')
    runner = _toy_runner(tmp_path, max_iters=4, resume=True)
    runner.train()
    assert runner.iter == 4
    assert torch.load(tmp_path / 'iter_3.pth', weights_only=True)['meta']['iter'] == 3


@pytest.mark.parametrize('cut', ['half', 'empty'])
def test_truncated_checkpoint_error_names_file(tmp_path, cut):
    full = tmp_path / 'full.pth'
    torch.save({'state_dict': {'w': torch.randn(1000)}, 'meta': {}}, full)
    bad = tmp_path / 'iter_7.pth'
    if cut == 'half':
        _truncate(full, bad)
    else:
        bad.write_bytes(b'')
    with pytest.raises(Exception) as err:
        load_checkpoint_file(str(bad))
    assert 'iter_7.pth' in str(err.value), f'{type(err.value).__name__}: {err.value}'
