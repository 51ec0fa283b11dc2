"""R6 (missing SAM checkpoint in a stage-2 config), R12 (sampler settings through
``tools/train.py``) and R13 (CUDA asked for on a CPU machine).

The checkpoint-file errors themselves (missing file, wrong architecture, unsafe pickle) are
tested in tests/sam/test_sam_checkpoint.py; the sampler rules in
tests/utils/test_sampler_check.py.
"""
import os.path as osp
import subprocess
import time

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mmssis.registry import MODELS
from mmssis.testing import tiny_mask_rcnn_cfg
from mmssis.testing.tiny_run import DEMO_SEMI_CONFIG, shrink_for_test
from mmssis.utils import adapt_cfg_to_machine
from rel_configs import PYTHON, REFINE_CONFIG, REPO, subprocess_env

MISSING_SAM = '/nonexistent/sam_vit_b.pth'
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')


def _missing_vit_b_refiner() -> dict:
    return dict(type='SamMaskRefiner',
                backend=dict(type='SegmentAnythingBackend', model_type='vit_b',
                             checkpoint=MISSING_SAM))


# ------------------------------------------------------------------ R6
def test_stage2_missing_sam_checkpoint_fails_at_model_build():
    cfg = dict(type='SemiMaskDetector', detector=tiny_mask_rcnn_cfg(),
               data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                                      data_preprocessor=tiny_mask_rcnn_cfg()[
                                          'data_preprocessor']),
               semi_train_cfg=dict(sam_refiner=_missing_vit_b_refiner()))
    with DefaultScope.overwrite_default_scope('mmssis'):
        with pytest.raises(FileNotFoundError) as err:
            MODELS.build(ConfigDict(cfg))
    assert MISSING_SAM in str(err.value) and 'vit_b' in str(err.value)


@pytest.mark.slow
def test_stage2_missing_sam_checkpoint_fails_before_training(tiny_demo, tmp_path):
    """Through the runner: the error comes from ``Runner.from_cfg`` (model build), before
    any data is loaded or any iteration (or checkpoint) happens."""
    cfg = Config.fromfile(REFINE_CONFIG)
    shrink_for_test(cfg, tiny_demo.root, str(tmp_path / 'work'), max_iters=2)
    cfg.model.detector.backbone.pretrained = False
    cfg.model.semi_train_cfg.sam_refiner = _missing_vit_b_refiner()
    with pytest.raises(FileNotFoundError, match=MISSING_SAM):
        Runner.from_cfg(adapt_cfg_to_machine(cfg))
    assert not list((tmp_path / 'work').glob('*.pth'))


# ------------------------------------------------------------------ R13
@NO_CUDA
def test_cuda_device_on_cpu_machine_is_a_clear_error():
    with pytest.raises(RuntimeError, match='asks for device "cuda".*no CUDA device'):
        adapt_cfg_to_machine(Config(dict(device='cuda')))


@NO_CUDA
def test_sam_backend_cuda_device_on_cpu_machine_is_a_clear_error():
    cfg = Config(dict(model=dict(semi_train_cfg=dict(sam_refiner=dict(
        type='SamMaskRefiner', backend=dict(type='LiteMedSamBackend', device='cuda:0'))))))
    with pytest.raises(RuntimeError, match='asks for device "cuda:0".*no CUDA device'):
        adapt_cfg_to_machine(cfg)


@NO_CUDA
def test_refine_config_sam_backend_cuda_device_on_cpu_machine_is_a_clear_error():
    cfg = Config.fromfile(REFINE_CONFIG)
    cfg.model.semi_train_cfg.sam_refiner.backend.device = 'cuda:0'
    with pytest.raises(RuntimeError, match='asks for device "cuda:0"'):
        adapt_cfg_to_machine(cfg)


# ------------------------------------------------------------------ R12
@pytest.mark.slow
def test_train_py_rejects_bad_source_ratio_before_building(tmp_path):
    work = tmp_path / 'work'
    start = time.time()
    proc = subprocess.run(
        [PYTHON, osp.join(REPO, 'tools', 'train.py'), osp.join(REPO, DEMO_SEMI_CONFIG),
         '--work-dir', str(work), '--cfg-options', 'train_dataloader.sampler.source_ratio=[1,2]'],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    elapsed = time.time() - start
    assert proc.returncode != 0
    assert 'SemiSamplerConfigError' in proc.stderr
    assert 'batch_size=4' in proc.stderr and 'source_ratio=[1, 2]' in proc.stderr
    # Nothing was built: the Runner would have created the work dir and its log.
    assert not work.exists()
    assert elapsed < 90, f'took {elapsed:.0f} s'
