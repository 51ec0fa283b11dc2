"""Every registry searched under ``default_scope='mmssis'`` has an mmssis child.

Without one, mmengine falls back to the root and warns ``Failed to search registry with
scope "mmssis" in the "<name>" registry tree`` (it did for ``log_processor`` at every train
and test).
"""
import uuid

import mmdet.registry as mmdet_registry
import mmengine.logging
import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import Registry
from mmengine.runner import Runner

import mmssis.registry as mmssis_registry

WARNING = 'Failed to search registry with scope'


@pytest.fixture
def registry_warnings(monkeypatch):
    """Messages of mmengine's ``print_log`` calls (still logged as usual); the registry
    imports it from ``mmengine.logging`` at each call."""
    messages = []
    original = mmengine.logging.print_log

    def record(msg, *args, **kwargs):
        messages.append(str(msg))
        return original(msg, *args, **kwargs)

    monkeypatch.setattr(mmengine.logging, 'print_log', record)
    return messages


def _registries(module, scope: str) -> dict:
    """The registries ``module`` defines (not the parents it imports)."""
    return {name: reg for name, reg in vars(module).items()
            if isinstance(reg, Registry) and reg.scope == scope}


def test_every_mmdet_child_registry_has_an_mmssis_child(registry_warnings):
    mmdet_regs = _registries(mmdet_registry, 'mmdet')
    assert 'LOG_PROCESSORS' in mmdet_regs and 'RUNNER_CONSTRUCTORS' in mmdet_regs
    ours = _registries(mmssis_registry, 'mmssis')
    for name, parent in mmdet_regs.items():
        assert name in ours, f'mmssis.registry has no child of mmdet.registry.{name}'
        assert ours[name].parent is parent and ours[name].scope == 'mmssis'
        # mmengine's lookup under the mmssis scope, from the root of that tree.
        with parent.parent.switch_scope_and_registry('mmssis') as found:
            assert found is ours[name], name
    assert not [m for m in registry_warnings if WARNING in m], registry_warnings


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(torch.stack(inputs) if isinstance(inputs, list) else inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


def test_runner_under_mmssis_scope_warns_about_no_registry(registry_warnings, tmp_path):
    data = [dict(inputs=torch.randn(2)) for _ in range(4)]
    runner = Runner(
        model=_Toy(), work_dir=str(tmp_path), default_scope='mmssis',
        experiment_name=f'registry_scope_{uuid.uuid4().hex[:8]}',
        train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate'), batch_size=2,
                              num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=2),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1,
                                       log_metric_by_epoch=False),
                           checkpoint=dict(type='CheckpointHook', interval=10**9)),
        log_processor=dict(type='LogProcessor', window_size=1, by_epoch=False),
        visualizer=dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')],
                        name=f'registry_scope_{uuid.uuid4().hex[:8]}'),
        log_level='WARNING')
    # Building the runner builds its log processor, visualizer, hooks under the scope.
    assert type(runner.log_processor).__name__ == 'LogProcessor'
    assert not [m for m in registry_warnings if WARNING in m], registry_warnings
