"""Every config under configs/ loads, resolves every type under its scope, and builds."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmssis.registry import MODELS
from mmssis.testing import unresolved_types
from mmssis.testing.paper_run import save_tiny_sam2, swap_sam_backends

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# configs/custom/custom_data.py holds data settings only (read by the configs beside it)
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p and not p.endswith(osp.join('custom', 'custom_data.py')))


def _family(path: str):
    """(folder, stage prefix, detector): the fast run builds one config of each."""
    name = osp.basename(path)
    det = 'mask2former' if 'mask2former' in name else 'mask-rcnn' if 'mask-rcnn' in name \
        else 'other'
    return osp.dirname(path), name.split('_')[0], det


_FIRST = {}
for _p in CONFIGS:
    _FIRST.setdefault(_family(_p), _p)
# Every config loads and resolves in the fast run; the model of one per family is built
# there, the others' (same code, other numbers) in the full run.
BUILDS = [p if _FIRST[_family(p)] == p else pytest.param(p, marks=pytest.mark.slow)
          for p in CONFIGS]


def test_there_are_configs():
    assert len(CONFIGS) >= 1


@pytest.fixture(scope='module')
def tiny_sam2(tmp_path_factory):
    return save_tiny_sam2(str(tmp_path_factory.mktemp('sam2') / 'tiny.pt'), 128)


def _sam_backends(node):
    if isinstance(node, dict):
        if str(node.get('type', '')).endswith(('Sam2Backend', 'SegmentAnythingBackend')):
            yield node
        for v in node.values():
            yield from _sam_backends(v)
    elif isinstance(node, list):
        for v in node:
            yield from _sam_backends(v)


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_resolves(path):
    cfg = Config.fromfile(path)
    assert cfg.get('default_scope') == 'mmssis', f'{path}: mmssis configs set default_scope'
    missing = unresolved_types(cfg)
    assert not missing, f'{path}: types not found under their scope: {missing}'


@pytest.mark.parametrize('path', BUILDS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_builds(path, tiny_sam2):
    cfg = Config.fromfile(path)
    # Paper configs name SAM 2 Hiera-L weights by path; none can be downloaded here, so the
    # model is built with a random SAM 2.1 Hiera-T loaded from a saved checkpoint instead.
    paper_sams = list(_sam_backends(cfg.model))
    for sam in paper_sams:
        assert sam.checkpoint.startswith('checkpoints/'), (path, sam)
    if paper_sams:
        assert swap_sam_backends(cfg.model, tiny_sam2) == len(paper_sams)
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
