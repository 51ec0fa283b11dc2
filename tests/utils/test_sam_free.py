"""Evaluation and export need no SAM: ``strip_sam_for_eval`` (used by ``tools/test.py``
and ``tools/model_converters/export_student.py``) removes the training-only SAM parts."""
import glob
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmssis.registry import MODELS
from mmssis.testing.tiny_run import shrink_for_test
from mmssis.testing.tools import load_tool
from mmssis.utils import sam_free_message, strip_sam_for_eval

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
S4M_DEMO = osp.join(REPO, 'configs/demo/s4m_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py')
DISTILL_DEMO = osp.join(
    REPO, 'configs/demo/s4m-distill_mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py')
S4M_PAPER = osp.join(REPO, 'configs/s4m/s4m_mask-rcnn_r50_fpn_180k_semi-0.1-coco.py')
MISSING = '/nonexistent/checkpoints/sam_vit_h_4b8939.pth'
CLASSES = ('disc', 'square', 'triangle', 'star')


def _missing_backend() -> dict:
    return dict(type='mmssis.SegmentAnythingBackend', model_type='vit_h', checkpoint=MISSING)


def test_strips_stage2_refiner_and_stage1_distiller():
    cfg = Config.fromfile(S4M_PAPER)
    ckpt = cfg.model.semi_train_cfg.sam_refiner.backend.checkpoint
    removed = strip_sam_for_eval(cfg)
    assert removed == [('model.semi_train_cfg.sam_refiner', [ckpt])]
    assert cfg.model.semi_train_cfg.sam_refiner is None
    assert strip_sam_for_eval(cfg) == []  # idempotent
    msg = sam_free_message(removed)
    assert msg.startswith('SAM is not needed for evaluation') and ckpt in msg

    cfg = Config.fromfile(DISTILL_DEMO)
    cfg.model.distill.sam = _missing_backend()
    assert strip_sam_for_eval(cfg) == [('model.distill', [MISSING])]
    assert cfg.model.distill is None
    # A semi config whose detector is a stage-1 distillation detector: stripped too.
    semi = Config(dict(model=dict(type='SemiMaskDetector', detector=dict(
        type='SamDistillMaskRCNN', distill=dict(sam=_missing_backend())))))
    assert [k for k, _ in strip_sam_for_eval(semi)] == ['model.detector.distill']
    assert strip_sam_for_eval(Config(dict(model=dict(type='MaskRCNN')))) == []


def test_stripped_stage1_model_builds_without_the_sam_checkpoint():
    cfg = Config.fromfile(DISTILL_DEMO)
    cfg.model.backbone.pretrained = False
    cfg.model.distill.sam = _missing_backend()
    with DefaultScope.overwrite_default_scope('mmssis'):
        with pytest.raises(FileNotFoundError, match='sam_vit_h_4b8939'):
            MODELS.build(cfg.model)
        strip_sam_for_eval(cfg)
        model = MODELS.build(cfg.model)
    assert model.distiller is None


def test_export_config_has_no_sam_and_says_so():
    cfg = Config.fromfile(S4M_DEMO)
    cfg.model.semi_train_cfg.sam_refiner.backend = _missing_backend()
    # A student that was a stage-1 distillation detector keeps its mmssis type in the
    # exported config: without the strip its SAM would come along.
    cfg.model.detector.type = 'mmssis.SamDistillMaskRCNN'
    cfg.model.detector.distill = dict(type='mmssis.SamStructuralDistiller',
                                      sam=_missing_backend())
    plain, notes = load_tool('model_converters/export_student.py').plain_config(cfg)
    assert notes[0].startswith('SAM is not needed for evaluation')
    assert 'model.semi_train_cfg.sam_refiner' in notes[0] and 'model.detector.distill' in notes[0]
    assert MISSING in notes[0]
    assert plain.model.type == 'mmssis.SamDistillMaskRCNN' and plain.model.distill is None
    text = plain.pretty_text
    assert 'SegmentAnything' not in text and 'sam_refiner' not in text
    assert MISSING not in text
    # The config given is left as it was.
    assert cfg.model.semi_train_cfg.sam_refiner.backend.checkpoint == MISSING


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tools_test_py_evaluates_stage2_checkpoint_without_sam_checkpoint(
        tiny_demo, tmp_path, monkeypatch):
    """The full S4M stage-2 demo config (SAM refinement, ``SamBenefitHook``, calibration)
    whose SAM checkpoint does not exist: tools/test.py builds the student without SAM,
    says so in the log, and gives the COCO metrics."""
    cfg = Config.fromfile(S4M_DEMO)
    shrink_for_test(cfg, tiny_demo.root, str(tmp_path / 'train'))
    cfg.model.detector.backbone.pretrained = False
    cfg.model.detector.test_cfg.rpn.update(nms_pre=100, max_per_img=50)
    cfg.model.detector.test_cfg.rcnn.max_per_img = 10
    cfg.model.semi_test_cfg.predict_on = 'student'
    cfg.model.semi_train_cfg.sam_refiner.backend = _missing_backend()
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook', draw=False)
    cfg_path = str(tmp_path / 's4m_missing_sam.py')
    cfg.dump(cfg_path)
    # The training config really needs the missing file.
    with DefaultScope.overwrite_default_scope('mmssis'):
        with pytest.raises(FileNotFoundError, match='sam_vit_h_4b8939'):
            MODELS.build(cfg.model)
        model_cfg = Config(dict(model=cfg.model.to_dict()))
        strip_sam_for_eval(model_cfg)
        torch.manual_seed(0)
        model = MODELS.build(model_cfg.model)
    ckpt = str(tmp_path / 'stage2.pth')
    torch.save(dict(meta=dict(dataset_meta=dict(classes=CLASSES)),
                    state_dict=model.state_dict()), ckpt)

    work = tmp_path / 'test'
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr(sys, 'argv', ['test.py', cfg_path, ckpt, '--work-dir', str(work)])
    load_tool('test.py').main()

    logs = glob.glob(str(work / '*' / '*.log'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        log = f.read()
    assert 'SAM is not needed for evaluation' in log
    assert 'model.semi_train_cfg.sam_refiner' in log and MISSING in log
    assert 'coco/segm_mAP:' in log and 'coco/bbox_mAP:' in log
    assert 'Error' not in log
