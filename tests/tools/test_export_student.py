"""tools/model_converters/export_student.py: a semi checkpoint's student as a plain mmdet
model that MMDetection's own tools/test.py evaluates exactly like mmssis does."""
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import mmdet
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmssis.registry import MODELS
from mmssis.testing.tiny_run import DEMO_SEMI_CONFIG, shrink_for_test
from mmssis.utils import adapt_cfg_to_machine
from mmssis.testing.tools import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MMDET_TEST = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'test.py')
CLASSES = ('disc', 'square', 'triangle', 'star')


def _tool():
    return load_tool('model_converters/export_student.py')


@pytest.fixture(scope='module')
def semi_run(tiny_demo, tmp_path_factory):
    """A shrunk demo semi config (dumped) and a checkpoint of a freshly built detector,
    saved the way the runner does (``state_dict`` + ``meta`` with dataset_meta / cfg)."""
    root = tmp_path_factory.mktemp('export')
    cfg = Config.fromfile(osp.join(REPO, DEMO_SEMI_CONFIG))
    shrink_for_test(cfg, tiny_demo.root, str(root / 'work'))
    cfg.model.detector.backbone.pretrained = False
    cfg.model.semi_train_cfg.score_thr = 0.05
    cfg.test_dataloader.batch_size = 2
    # Fewer proposals / detections: the untrained model's inference stays quick.
    cfg.model.detector.test_cfg.rpn.update(nms_pre=100, max_per_img=50)
    cfg.model.detector.test_cfg.rcnn.max_per_img = 10
    adapt_cfg_to_machine(cfg)
    cfg_path = str(root / 'semi_cfg.py')
    cfg.dump(cfg_path)
    with DefaultScope.overwrite_default_scope('mmssis'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    meta = dict(dataset_meta=dict(classes=CLASSES, palette=[(220, 20, 60)] * 4),
                cfg=cfg.pretty_text)
    ckpt_path = str(root / 'semi.pth')
    torch.save(dict(meta=meta, state_dict=model.state_dict()), ckpt_path)
    return dict(root=root, cfg=cfg, cfg_path=cfg_path, ckpt=ckpt_path, model=model)


def test_state_dict_is_the_chosen_network_without_prefix(semi_run, tmp_path):
    tool = _tool()
    model = semi_run['model']
    for which in ('student', 'teacher'):
        out = tool.export_checkpoint(semi_run['ckpt'], str(tmp_path / f'{which}.pth'), which)
        state = torch.load(tmp_path / f'{which}.pth', weights_only=True)
        assert set(state) == {'state_dict', 'meta'}
        assert state['meta']['dataset_meta']['classes'] == CLASSES
        assert state['meta']['exported_from']['network'] == which
        sd = state['state_dict']
        assert not any(k.startswith(('student.', 'teacher.')) for k in sd)
        expected = getattr(model, which).state_dict()
        assert list(sd) == list(expected)
        for key, value in expected.items():
            assert torch.equal(sd[key], value), key
        assert list(out['state_dict']) == list(sd)
    # The two networks were initialised differently, so picking the right one matters.
    key = 'roi_head.mask_head.conv_logits.weight'
    assert not torch.equal(model.student.state_dict()[key], model.teacher.state_dict()[key])


def test_config_defaults_to_the_text_stored_in_the_checkpoint(semi_run, tmp_path, capsys):
    ckpt, cfg_path = _tool().main([semi_run['ckpt'], str(tmp_path / 'teacher.pth'),
                                   '--which', 'teacher'])
    assert cfg_path == str(tmp_path / 'teacher.py')
    assert capsys.readouterr().out.strip().splitlines()[-1] == cfg_path
    cfg = Config.fromfile(cfg_path)
    assert cfg.model.type == 'MaskRCNN' and cfg.default_scope == 'mmdet'
    assert cfg.test_evaluator.ann_file == semi_run['cfg'].test_evaluator.ann_file


def test_refuses_plain_and_sam_checkpoints():
    tool = _tool()
    plain = {'backbone.w': torch.zeros(1)}
    with pytest.raises(ValueError, match='not a semi-supervised checkpoint'):
        tool.network_state_dict(plain)
    with pytest.raises(ValueError, match='outside student./teacher.'):
        tool.network_state_dict({'student.a': torch.zeros(1), 'ema.a': torch.zeros(1)})
    with pytest.raises(AssertionError, match='SAM'):
        tool.network_state_dict({'student.a': torch.zeros(1),
                                 'teacher.sam.image_encoder.w': torch.zeros(1)})
    ddp = {'module.student.a': torch.ones(1), 'module.teacher.a': torch.zeros(1)}
    assert list(tool.network_state_dict(ddp, 'student')) == ['a']


def test_plain_config_is_mmdet_only(semi_run):
    cfg, notes = _tool().plain_config(semi_run['cfg'])
    assert cfg.default_scope == 'mmdet'
    assert cfg.model.type == 'MaskRCNN'
    assert cfg.model.data_preprocessor.type == 'DetDataPreprocessor'
    assert cfg.model.backbone.type == 'mmssis.EfficientNetLite'
    assert cfg.custom_imports == dict(imports=['mmssis.models.backbones'],
                                      allow_failed_imports=False)
    assert cfg.test_dataloader.dataset.type == 'CocoDataset'
    assert cfg.val_dataloader.dataset.type == 'CocoDataset'
    assert cfg.test_cfg == dict(type='TestLoop') and cfg.val_cfg == dict(type='ValLoop')
    assert 'custom_hooks' not in cfg and 'train_dataloader' not in cfg
    assert any('CheckedCocoDataset -> CocoDataset' in n for n in notes)


def _run(cmd, work_dir):
    env = dict(os.environ, PYTHONPATH=REPO, MPLBACKEND='Agg')
    return subprocess.Popen([sys.executable, *cmd, '--work-dir', str(work_dir)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _segm_map(log: str) -> float:
    found = re.findall(r'coco/segm_mAP: (-?[0-9.]+)', log)
    assert found, log[-3000:]
    return float(found[-1])


def _load_preds(path):
    with open(path, 'rb') as f:
        return sorted(pickle.load(f), key=lambda r: r['img_id'])


@pytest.mark.slow
def test_mmdet_test_py_matches_mmssis_test_py(semi_run, capsys):
    root = semi_run['root']
    out = str(root / 'exported' / 'student.pth')
    ckpt, plain_cfg = _tool().main([semi_run['ckpt'], out, '--which', 'student',
                                    '--config', semi_run['cfg_path']])
    assert ckpt == out and plain_cfg == str(root / 'exported' / 'student.py')
    assert capsys.readouterr().out.strip().splitlines()[-1] == plain_cfg

    # Both evaluations in parallel (two processes; the box has 2 cores).
    mmdet_run = _run([MMDET_TEST, plain_cfg, out, '--out', str(root / 'mmdet.pkl')],
                     root / 'mmdet_work')
    mmssis_run = _run([osp.join(REPO, 'tools', 'test.py'), semi_run['cfg_path'],
                       semi_run['ckpt'], '--out', str(root / 'mmssis.pkl'),
                       '--cfg-options', 'model.semi_test_cfg.predict_on=student'],
                      root / 'mmssis_work')
    logs = [p.communicate(timeout=240)[0] for p in (mmdet_run, mmssis_run)]
    for proc, log in zip((mmdet_run, mmssis_run), logs):
        assert proc.returncode == 0, log[-3000:]
    assert _segm_map(logs[0]) == _segm_map(logs[1])

    # Stronger than the (near-zero, untrained) mAP: the predictions are identical.
    plain, semi = _load_preds(root / 'mmdet.pkl'), _load_preds(root / 'mmssis.pkl')
    assert [r['img_id'] for r in plain] == [r['img_id'] for r in semi] and len(plain) == 4
    assert sum(len(r['pred_instances']['scores']) for r in plain) > 0
    for a, b in zip(plain, semi):
        pa, pb = a['pred_instances'], b['pred_instances']
        for key in ('bboxes', 'scores', 'labels'):
            np.testing.assert_array_equal(np.asarray(pa[key]), np.asarray(pb[key]))
        assert [m['counts'] for m in pa['masks']] == [m['counts'] for m in pb['masks']]


@pytest.mark.slow
def test_cli_exports_a_runner_checkpoint_in_a_fresh_process(semi_run, tmp_path):
    """A checkpoint as mmengine's runner writes it (message hub with HistoryBuffer, numpy
    scalars) loads in a fresh process that never called register_all_modules (nothing is
    installed by `import mmssis`): the allow-list applies to mmssis' own loader."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('export_cli_hub')
    for i in range(3):
        hub.update_scalar('train/loss', np.float64(1.0 / (i + 1)))
    meta = dict(dataset_meta=dict(classes=CLASSES, palette=[(220, 20, 60)] * 4),
                cfg=semi_run['cfg'].pretty_text, seed=np.int64(0), iter=2)
    path = str(tmp_path / 'runner.pth')
    torch.save(dict(meta=meta, state_dict=semi_run['model'].state_dict(),
                    message_hub=hub.state_dict()), path)
    out = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'model_converters', 'export_student.py'),
         path, str(tmp_path / 'student.pth'), semi_run['cfg_path']],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 0, out.stderr[-3000:]
    assert osp.isfile(tmp_path / 'student.pth') and osp.isfile(tmp_path / 'student.py')
    assert 'custom_imports' in out.stdout  # the demo backbone keeps mmssis
