"""Every config under configs/ loads, resolves every type under its scope, and builds."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmssis.registry import MODELS
from mmssis.testing import unresolved_types

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)


def test_there_are_configs():
    assert len(CONFIGS) >= 1


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.get('default_scope') == 'mmssis', f'{path}: mmssis configs set default_scope'
    missing = unresolved_types(cfg)
    assert not missing, f'{path}: types not found under their scope: {missing}'
    with DefaultScope.overwrite_default_scope('mmssis'):
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_checker_catches_unprefixed_type_in_mmdet_scope():
    cfg = Config(dict(default_scope='mmssis',
                      model=dict(type='MaskRCNN', _scope_='mmdet',
                                 backbone=dict(type='EfficientNetLite'))))
    missing = unresolved_types(cfg)
    assert missing and missing[0][1] == 'EfficientNetLite'
    cfg.model.backbone.type = 'mmssis.EfficientNetLite'
    assert not unresolved_types(cfg)
