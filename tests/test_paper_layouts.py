"""What the per-GPU batch layout of every S4M stage-2 paper config makes ARP do, and what
the student sees before ARP: the official shares and views (cvlab-kaist/S4M)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmssis.models.augments import ARPLayoutError, check_arp_layout
from mmssis.utils.sampler_check import check_semi_sampler

STAGE2 = sorted(glob.glob('configs/s4m/s4m_*semi*.py'))
# Share of the unlabelled images per GPU that ARP mixes in the official runs: COCO
# 4 GPUs x (3 + 3) -> 1 pair of 3; Cityscapes 4 GPUs x (4 + 4) -> 1 pair of 4. VOC follows
# the COCO recipe (no official VOC run).
OFFICIAL_SHARE = {'coco': 2 / 3, 'cityscapes': 2 / 4, 'voc': 2 / 3}
PHOTOMETRIC = ('PhotoMetricDistortion', 'ColorTransform', 'Color', 'Brightness', 'Contrast',
               'RandomApply', 'RandomGrayscale', 'RandomOrder', 'AutoContrast', 'Equalize')


def _family(path: str) -> str:
    return next(k for k in OFFICIAL_SHARE if osp.basename(path).endswith(f'{k}.py')
                or f'-{k}-' in osp.basename(path) or f'-{k}.' in osp.basename(path))


def test_every_stage2_config_is_checked():
    assert len(STAGE2) >= 13
    assert {_family(p) for p in STAGE2} >= {'coco', 'cityscapes'}


@pytest.mark.parametrize('path', STAGE2, ids=osp.basename)
def test_arp_mixes_the_official_share_per_gpu(path):
    cfg = Config.fromfile(path)
    counts = check_semi_sampler(cfg, world_size=cfg.get('recipe_gpus', 1))
    share = check_arp_layout(cfg.model, counts[-1])
    assert share == pytest.approx(OFFICIAL_SHARE[_family(path)]), (path, counts)
    # The recipe's global batch is the one its learning rate belongs to.
    base = cfg.auto_scale_lr.base_batch_size
    if 'coco-1gpu' not in path:
        assert cfg.train_dataloader.batch_size * cfg.recipe_gpus == base


@pytest.mark.parametrize('path', STAGE2, ids=osp.basename)
def test_student_view_is_geometry_only_until_the_strong_augmentation(path):
    """Officially ARP and the strong augmentation act on the geometry-only view
    (`image_wo_weak`); colour jitter of the weak view belongs to the teacher alone."""
    cfg = Config.fromfile(path)
    pipeline = cfg.train_dataloader.dataset.datasets[1].pipeline
    branch = pipeline[-1]
    assert branch.type == 'MultiBranch'
    before = [t.type for t in pipeline[:-1]]
    student = [t.type for t in branch.unsup_student]
    assert not set(before + student) & set(PHOTOMETRIC), (before, student)
    assert cfg.model.semi_train_cfg.student_augment is not None


def test_mask_rcnn_cityscapes_configs_mix():
    paths = [p for p in STAGE2 if 'mask-rcnn' in p and 'cityscapes' in p]
    assert len(paths) == 4
    for path in paths:
        cfg = Config.fromfile(path)
        counts = check_semi_sampler(cfg, world_size=cfg.recipe_gpus)
        assert check_arp_layout(cfg.model, counts[-1]) > 0


@pytest.mark.parametrize('unlabelled,match', [(1, 'cannot mix'), (2, 'mix every')])
def test_a_layout_without_unmixed_or_mixed_images_is_refused(unlabelled, match):
    cfg = Config.fromfile(STAGE2[0])
    with pytest.raises(ARPLayoutError, match=match):
        check_arp_layout(cfg.model, unlabelled)


def test_train_py_refuses_a_layout_that_mixes_everything_before_building(tmp_path,
                                                                          monkeypatch):
    import runpy
    import sys
    work_dir = tmp_path / 'work'
    monkeypatch.setattr(sys, 'argv', [
        'tools/train.py', 'configs/s4m/s4m_mask2former_r50_368k_semi-0.1-coco.py',
        '--work-dir', str(work_dir), '--cfg-options', 'train_dataloader.batch_size=4',
        'train_dataloader.sampler.batch_size=4', 'train_dataloader.sampler.source_ratio=[2,2]'])
    with pytest.raises(ARPLayoutError, match='mix every unlabelled image with 2 per GPU'):
        runpy.run_path('tools/train.py', run_name='__main__')
    assert not work_dir.exists()  # nothing was built


@pytest.mark.parametrize('path', sorted(glob.glob('configs/s4m/*.py')), ids=osp.basename)
def test_every_paper_config_draws_a_global_stream_per_rank(path):
    randomness = Config.fromfile(path).randomness
    assert randomness.seed == 0 and randomness.diff_rank_seed is True
