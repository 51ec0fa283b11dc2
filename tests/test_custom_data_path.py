"""A new user's path on their own data (docs/user_guides/custom_data.md), step by step:

custom 3-class COCO data + a folder of unlabelled images -> edit configs/custom/custom_data.py
only -> stage 1 (S4M distillation) -> stage 2 (refinement + ARP, unlabelled image folder) ->
export the student -> demo/image_demo.py draws its masks -> mmdet's own tools/test.py
evaluates the exported model without importing mmssis.

The paper-scale models are swapped for tiny ones (a ResNet-18-style Mask R-CNN of mmdet types
only, a random SAM 2.1 Hiera-T) and 1024 px for 128 px; the data settings are the configs'.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import cv2
import mmcv
import numpy as np
import pytest
from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner

from mmssis.structures import encode_rle
from mmssis.testing.paper_run import save_tiny_sam2, shrink_paper_config
from mmssis.testing.tools import load_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLASSES = ('cat', 'dog', 'bird')
SIZE = 96


def _draw(rng, label: int) -> np.ndarray:
    """One object mask of class ``label`` (0 box, 1 disc, 2 triangle) at a random place."""
    m = np.zeros((SIZE, SIZE), np.uint8)
    s = int(rng.integers(18, 36))
    x, y = (int(v) for v in rng.integers(4, SIZE - s - 4, size=2))
    if label == 0:
        m[y:y + s, x:x + s] = 1
    elif label == 1:
        cv2.circle(m, (x + s // 2, y + s // 2), s // 2, 1, -1)
    else:
        pts = np.array([[x + s // 2, y], [x, y + s], [x + s, y + s]], np.int32)
        cv2.fillPoly(m, [pts], 1)
    return m


def make_custom_data(root: str, seed: int = 0) -> dict:
    """Labelled (8) + val (4) COCO jsons of 3 classes, 6 unlabelled images in a folder tree."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    os.makedirs(osp.join(root, 'unlabeled', 'more'), exist_ok=True)
    colours = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220]], np.uint8)

    def image(masks_labels):
        img = rng.integers(60, 120, (SIZE, SIZE, 3)).astype(np.uint8)
        for m, lab in masks_labels:
            img[m.astype(bool)] = colours[lab]
        return img

    def split(name: str, num: int, first_id: int):
        images, anns = [], []
        for i in range(num):
            objs = [(_draw(rng, int(lab)), int(lab)) for lab in rng.integers(0, 3, size=2)]
            file_name = f'{name}_{i:03d}.png'
            mmcv.imwrite(image(objs), osp.join(root, 'images', file_name))
            img_id = first_id + i
            images.append(dict(id=img_id, file_name=file_name, height=SIZE, width=SIZE))
            for m, lab in objs:
                rle, area, bbox = encode_rle(m)
                anns.append(dict(id=len(anns) + 1 + 1000 * first_id, image_id=img_id,
                                 category_id=lab + 1, segmentation=rle, area=area,
                                 bbox=bbox, iscrowd=0))
        doc = dict(images=images, annotations=anns,
                   categories=[dict(id=i + 1, name=n) for i, n in enumerate(CLASSES)])
        with open(osp.join(root, 'annotations', f'{name}.json'), 'w') as f:
            json.dump(doc, f)

    split('labeled', 8, 1)
    split('val', 4, 100)
    for i in range(6):
        sub = 'more' if i % 2 else ''
        objs = [(_draw(rng, int(lab)), int(lab)) for lab in rng.integers(0, 3, size=2)]
        mmcv.imwrite(image(objs), osp.join(root, 'unlabeled', sub, f'u_{i:03d}.jpg'))
    return dict(root=root)


def _user_edits_custom_data(configs: str, data_root: str) -> None:
    """What the guide asks of the user: edit the values of configs/custom/custom_data.py."""
    path = osp.join(configs, 'custom', 'custom_data.py')
    with open(path) as f:
        text = f.read()
    text = re.sub(r"data_root='[^']*'", f"data_root='{data_root}/'", text)
    text = re.sub(r"classes=\([^)]*\)", f"classes={CLASSES!r}", text)
    with open(path, 'w') as f:
        f.write(text)


def _mmdet_only_tiny_backbone(cfg) -> None:
    """ResNet-18-style backbone (mmdet's ResNet, 16 base channels, no weights to download)."""
    det = cfg.model.get('detector', cfg.model)
    det.backbone = ConfigDict(type='ResNet', depth=18, base_channels=16, num_stages=4,
                              out_indices=(0, 1, 2, 3), frozen_stages=-1,
                              norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                              style='pytorch', init_cfg=None)
    det.neck.in_channels = [16, 32, 64, 128]


@pytest.fixture(scope='module')
def user_repo(tmp_path_factory):
    """A copy of configs/ (as a user's checkout) plus the user's data set."""
    base = tmp_path_factory.mktemp('user')
    shutil.copytree(osp.join(REPO, 'configs'), str(base / 'configs'))
    data = make_custom_data(str(base / 'data' / 'pets'))
    _user_edits_custom_data(str(base / 'configs'), data['root'])
    return base


@pytest.mark.slow
def test_custom_data_to_exported_model(user_repo, tmp_path):
    configs = user_repo / 'configs' / 'custom'
    root = str(user_repo / 'data' / 'pets') + '/'
    sam = save_tiny_sam2(str(tmp_path / 'tiny_sam2.pt'), 128)

    # -- stage 1: every data setting follows the one edited file
    cfg1 = Config.fromfile(str(configs / 's4m-distill_mask-rcnn_r50_fpn_90k_sup-custom.py'))
    assert cfg1.model.roi_head.bbox_head.num_classes == 3
    assert cfg1.model.roi_head.mask_head.num_classes == 3
    assert cfg1.train_dataloader.dataset.metainfo.classes == CLASSES
    assert cfg1.train_dataloader.dataset.data_root == root
    assert cfg1.val_evaluator.ann_file == root + 'annotations/val.json'
    shrink_paper_config(cfg1, None, str(tmp_path / 's1'), sam, CLASSES, image_size=128,
                        batch_size=2)
    _mmdet_only_tiny_backbone(cfg1)
    Runner.from_cfg(cfg1).train()
    stage1 = str(tmp_path / 's1' / 'iter_2.pth')
    assert osp.isfile(stage1)

    # -- stage 2: the unlabelled source is the image folder
    path2 = str(configs / 's4m_mask-rcnn_r50_fpn_180k_semi-custom.py')
    cfg2 = Config.fromfile(path2)
    assert cfg2.model.detector.roi_head.bbox_head.num_classes == 3
    labeled, unlabeled = cfg2.train_dataloader.dataset.datasets
    assert labeled.ann_file == 'annotations/labeled.json' and labeled.data_root == root
    assert unlabeled.type == 'mmssis.UnlabeledImageFolder'
    test_part = {k: cfg2[k] for k in ('test_dataloader', 'test_evaluator', 'test_cfg')}
    shrink_paper_config(cfg2, None, str(tmp_path / 's2'), sam, CLASSES, image_size=128,
                        batch_size=4, semi_overrides=dict(score_thr=0.0))
    _mmdet_only_tiny_backbone(cfg2)
    cfg2.load_from = stage1
    runner = Runner.from_cfg(cfg2)
    unlabeled_ds = runner.train_dataloader.dataset.datasets[1]
    assert type(unlabeled_ds).__name__ == 'UnlabeledImageFolder' and len(unlabeled_ds) == 6
    runner.train()
    stage2 = str(tmp_path / 's2' / 'iter_2.pth')

    # -- export: the student as a plain mmdet model (config of mmdet types only)
    cfg2.update(test_part)
    cfg2.test_dataloader.num_workers = 0
    cfg2.test_dataloader.persistent_workers = False
    semi_cfg = str(tmp_path / 's2.py')
    cfg2.dump(semi_cfg)
    export = load_tool('model_converters/export_student.py')
    ckpt, plain_cfg = export.main([stage2, str(tmp_path / 'student.pth'), semi_cfg])
    with open(plain_cfg) as f:
        text = f.read()
    assert 'mmssis' not in text, 'the exported config needs mmssis'

    # -- image_demo.py draws the exported model's masks on the user's images
    demo = load_tool('../demo/image_demo.py')
    out_dir = str(tmp_path / 'vis_out')
    written = demo.main([str(user_repo / 'data' / 'pets' / 'unlabeled'), plain_cfg,
                         '--weights', ckpt, '--out-dir', out_dir, '--device', 'cpu',
                         '--score-thr', '0.0', '--no-progress'])
    assert len(written) == 6
    src = mmcv.imread(str(user_repo / 'data' / 'pets' / 'unlabeled' / 'u_000.jpg'))
    drawn = mmcv.imread(osp.join(out_dir, 'vis', 'u_000.jpg'))
    assert drawn.shape == src.shape and np.abs(drawn.astype(int) - src).mean() > 1.0

    # -- mmdet's own tools/test.py evaluates it, with mmssis made unimportable
    import mmdet
    mmdet_test = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'test.py')
    code = ('import runpy, sys; sys.modules["mmssis"] = None; '
            f'sys.argv = ["test.py", {plain_cfg!r}, {ckpt!r}, "--work-dir", '
            f'{str(tmp_path / "mmdet_test")!r}]; '
            f'runpy.run_path({mmdet_test!r}, run_name="__main__")')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    res = subprocess.run([sys.executable, '-c', code], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'coco/segm_mAP' in res.stdout + res.stderr


@pytest.mark.slow
def test_cpu_trial_configs_train_on_the_users_data(user_repo, tmp_path):
    """docs/user_guides/custom_data.md, "Try it on a CPU first": the two commands, as a user
    runs them (tools/train.py, the shipped small model and LiteMedSAM, nothing swapped),
    shortened to 2 iterations each; stage 2 evaluates on the user's val json."""
    configs = user_repo / 'configs' / 'custom'
    root = str(user_repo / 'data' / 'pets') + '/'
    stage1_cfg = str(configs / 's4m-distill_mask-rcnn_effnetlite0_fpn_cpu-trial_sup-custom.py')
    stage2_cfg = str(configs / 's4m_mask-rcnn_effnetlite0_fpn_cpu-trial_semi-custom.py')
    cfg1, cfg2 = Config.fromfile(stage1_cfg), Config.fromfile(stage2_cfg)
    assert cfg1.model.roi_head.mask_head.num_classes == 3
    assert cfg1.train_dataloader.dataset.data_root == root
    assert cfg1.default_hooks.logger.interval == 1 and cfg1.train_cfg.max_iters == 200
    labeled, unlabeled = cfg2.train_dataloader.dataset.datasets
    assert labeled.ann_file == 'annotations/labeled.json'
    assert unlabeled.type == 'mmssis.UnlabeledImageFolder'
    assert cfg2.model.semi_train_cfg.sam_refiner.backend.type == 'LiteMedSamBackend'

    env = dict(os.environ, PYTHONPATH=REPO, MMSSIS_SAM_CACHE=str(tmp_path / 'sam_cache'))
    short = ['train_cfg.max_iters=2', 'train_dataloader.num_workers=0',
             'train_dataloader.persistent_workers=False']

    def train(config, work, *options):
        res = subprocess.run(
            [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir',
             str(work), '--cfg-options', *short, *options],
            cwd=str(user_repo), env=env, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        return res.stdout + res.stderr

    train(stage1_cfg, tmp_path / 'trial_stage1')
    stage1 = tmp_path / 'trial_stage1' / 'iter_2.pth'
    assert stage1.is_file()
    log = train(stage2_cfg, tmp_path / 'trial_stage2', f'load_from={stage1}',
                'train_cfg.val_interval=2', 'val_dataloader.num_workers=0',
                'val_dataloader.persistent_workers=False')
    assert re.search(r'Iter\(train\) \[1/2\]', log) and re.search(r'Iter\(train\) \[2/2\]', log)
    assert 'coco/segm_mAP' in log
    assert (tmp_path / 'trial_stage2' / 'iter_2.pth').is_file()
