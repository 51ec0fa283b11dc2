"""The S4M configs carry the paper's / official code's hyper-parameters, and their data
pipelines run (shared geometry for the teacher and student views of unlabelled images).

Sources (see configs/s4m/README.md): the official S4M code, cvlab-kaist/S4M --
``configs/{coco,cityscapes}/instance-segmentation/Base-*.yaml`` (AdamW 1e-4, wd 0.05,
backbone x0.1, full-model clip 0.01, AMP, 368,750 / 90,000 iterations),
``scripts/{coco,cityscapes}/train_{teacher,student}.sh`` (batch sizes, COCO burn-in 25,000),
``config/add_cfg.py`` (EMA 0.9996, default burn-in 15,000) and
``mask2former/maskformer_model.py`` (class threshold 0.7, unsupervised loss x2.0).
"""
import glob
import json
import os.path as osp
import re

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from mmssis.registry import DATASETS, MODELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
S4M = osp.join(REPO, 'configs', 's4m')

COCO_FRACTIONS = ('0.01', '0.02', '0.05', '0.1')
CITY_FRACTIONS = ('0.05', '0.1', '0.2', '0.3')
VOC_FRACTIONS = ('0.1',)
# dataset -> (stage-2 config pattern, burn-in, max_iters, per-GPU ratio, GPUs, stage-1 pattern,
#             stage-1 images per iteration)
PAPER = {
    'coco': ('gd_mask2former_r50_368k_semi-{}-coco.py', 25000, 368750, [3, 3], 4,
             'mask2former_r50_368k_sup-{}-coco.py', 16),
    'cityscapes': ('gd_mask2former_r50_90k_semi-{}-cityscapes.py', 15000, 90000, [4, 4], 4,
                   'mask2former_r50_90k_sup-{}-cityscapes.py', 4),
}
STAGE2 = [(ds, f) for ds, fr in (('coco', COCO_FRACTIONS), ('cityscapes', CITY_FRACTIONS))
          for f in fr]


def _load(name):
    return Config.fromfile(osp.join(S4M, name))


def _check_optimizer(cfg):
    ow = cfg.optim_wrapper
    # mmengine's default dynamic loss scale: torch's GradScaler skips non-finite steps (R8)
    assert ow.type == 'AmpOptimWrapper' and ow.get('loss_scale', 'dynamic') == 'dynamic'
    assert ow.optimizer.type == 'AdamW'
    assert ow.optimizer.lr == pytest.approx(1e-4)
    assert ow.optimizer.weight_decay == pytest.approx(0.05)
    assert ow.paramwise_cfg.custom_keys['backbone'].lr_mult == pytest.approx(0.1)
    assert ow.clip_grad.max_norm == pytest.approx(0.01)
    assert ow.clip_grad.get('norm_type', 2) == 2


@pytest.mark.parametrize('dataset,fraction', STAGE2,
                         ids=[f'{d}-{f}' for d, f in STAGE2])
def test_stage2_mask2former_paper_hparams(dataset, fraction):
    name, burn_in, max_iters, ratio, gpus, _, _ = PAPER[dataset]
    cfg = _load(name.format(fraction))
    _check_optimizer(cfg)

    hooks = [h for h in cfg.custom_hooks if h.type == 'TeacherScheduleHook']
    assert len(hooks) == 1
    assert hooks[0].momentum == pytest.approx(0.9996)
    assert hooks[0].burn_in_iters == burn_in
    assert hooks[0].get('interval', 1) == 1

    model = cfg.model
    assert model.type == 'SemiMaskDetector'
    assert model.detector.type == 'Mask2Former'
    assert model.semi_train_cfg.score_thr == pytest.approx(0.7)
    assert model.semi_train_cfg.unsup_weight == pytest.approx(2.0)
    assert model.semi_train_cfg.get('sup_weight', 1.0) == pytest.approx(1.0)
    assert model.semi_train_cfg.mask_thr == pytest.approx(0.5)
    assert model.semi_test_cfg.predict_on == 'student'
    assert cfg.load_from is None  # the stage-1 checkpoint is given on the command line

    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.train_cfg.max_iters == max_iters
    assert cfg.val_cfg.type == 'TeacherStudentValLoop'
    loader = cfg.train_dataloader
    assert loader.sampler.source_ratio == ratio and loader.batch_size == sum(ratio)
    # labelled and unlabelled images per iteration, over all GPUs
    assert ratio[0] * gpus == {'coco': 12, 'cityscapes': 16}[dataset]
    assert ratio[1] * gpus == {'coco': 12, 'cityscapes': 16}[dataset]

    percent = {'coco': f'1@{round(float(fraction) * 100)}',
               'cityscapes': f'perc_{round(float(fraction) * 100)}'}[dataset]
    lab, unl = loader.dataset.datasets
    assert lab.ann_file.endswith(f'.{percent}.json')
    assert unl.ann_file.endswith(f'.{percent}-unlabeled.json')
    assert lab.pipeline[-1].type == 'MultiBranch' and 'sup' in lab.pipeline[-1]
    assert {'unsup_teacher', 'unsup_student'} <= set(unl.pipeline[-1])


@pytest.mark.parametrize('dataset', ['coco', 'cityscapes'])
def test_schedules(dataset):
    name = PAPER[dataset][0].format(COCO_FRACTIONS[0] if dataset == 'coco'
                                    else CITY_FRACTIONS[0])
    sched = _load(name).param_scheduler
    sched = sched if isinstance(sched, list) else [sched]
    if dataset == 'coco':
        assert sched[-1].type == 'MultiStepLR'
        assert list(sched[-1].milestones) == [327778, 355092]
    else:
        assert sched[-1].type == 'PolyLR' and sched[-1].power == pytest.approx(0.9)
        assert sched[-1].end == 90000


@pytest.mark.parametrize('dataset', ['coco', 'cityscapes'])
def test_stage1_mask2former_hparams(dataset):
    _, _, max_iters, _, _, name, images = PAPER[dataset]
    for fraction in COCO_FRACTIONS if dataset == 'coco' else CITY_FRACTIONS:
        cfg = _load(name.format(fraction))
        _check_optimizer(cfg)
        assert cfg.model.type == 'Mask2Former'
        assert cfg.train_cfg.max_iters == max_iters
        gpus = 8 if dataset == 'coco' else 2
        assert cfg.train_dataloader.batch_size * gpus == images
        assert not cfg.get('custom_hooks')


def test_backbone_lr_multiplier_reaches_student_params():
    """The 'backbone' paramwise key matches the semi detector's `student.backbone.*`."""
    from mmengine.optim import build_optim_wrapper
    cfg = _load(PAPER['cityscapes'][0].format('0.1'))
    with DefaultScope.overwrite_default_scope('mmssis'):
        model = MODELS.build(cfg.model)
    ow_cfg = cfg.optim_wrapper.copy()
    ow_cfg.type = 'OptimWrapper'  # AMP needs a GPU
    optim = build_optim_wrapper(model, ow_cfg).optimizer
    lr_of = {}
    for group in optim.param_groups:
        for p in group['params']:
            lr_of[id(p)] = (group['lr'], group['weight_decay'])
    named = dict(model.named_parameters())
    assert lr_of[id(named['student.backbone.conv1.weight'])][0] == pytest.approx(1e-5)
    assert lr_of[id(named['student.panoptic_head.query_feat.weight'])] == (
        pytest.approx(1e-4), pytest.approx(0.0))
    head_w = 'student.panoptic_head.cls_embed.weight'
    assert lr_of[id(named[head_w])] == (pytest.approx(1e-4), pytest.approx(0.05))


# --------------------------------------------------------------------------------------
# The data pipelines of the semi bases run on tiny synthetic data sets.
CLASSES = {
    'coco': ('person', 'bicycle'),
    'cityscapes': ('person', 'car'),
    'voc': ('person', 'car'),
}
SEMI_CFG = {
    'coco': 'gd_mask2former_r50_368k_semi-0.1-coco.py',
    'cityscapes': 'gd_mask2former_r50_90k_semi-0.1-cityscapes.py',
    'voc': 'gd_mask-rcnn_r50_fpn_40k_semi-0.1-voc.py',
}


def _make_coco(root, ann_rel, img_dir, names, classes):
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i, name in enumerate(names):
        h, w = (48, 64) if i % 2 == 0 else (64, 48)
        path = osp.join(root, img_dir, name)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        images.append(dict(id=i + 1, file_name=name, height=h, width=w))
        anns.append(dict(id=i + 1, image_id=i + 1, category_id=1, iscrowd=0, area=400.0,
                         bbox=[4.0, 4.0, 20.0, 20.0],
                         segmentation=[[4.0, 4.0, 24.0, 4.0, 24.0, 24.0, 4.0, 24.0]]))
    doc = dict(images=images, annotations=anns,
               categories=[dict(id=k + 1, name=c) for k, c in enumerate(classes)])
    with open(osp.join(root, ann_rel), 'w') as f:
        json.dump(doc, f)


@pytest.mark.parametrize('dataset', ['coco', 'cityscapes', 'voc'])
def test_semi_pipelines_share_geometry(dataset, tmp_path):
    cfg = _load(SEMI_CFG[dataset])
    lab_cfg, unl_cfg = [d.copy() for d in cfg.train_dataloader.dataset.datasets]
    root = str(tmp_path)
    img_dir = lab_cfg.data_prefix['img']
    (tmp_path / img_dir).mkdir(parents=True)
    (tmp_path / 'ann').mkdir()
    _make_coco(root, 'ann/lab.json', img_dir, ['a.png', 'b.png'], CLASSES[dataset])
    _make_coco(root, 'ann/unl.json', img_dir, ['c.png', 'd.png'], CLASSES[dataset])
    for d, ann in ((lab_cfg, 'ann/lab.json'), (unl_cfg, 'ann/unl.json')):
        d.update(data_root=root, ann_file=ann)
        d.metainfo = dict(classes=CLASSES[dataset])
    np.random.seed(0)
    with DefaultScope.overwrite_default_scope('mmssis'):
        lab = DATASETS.build(lab_cfg)
        unl = DATASETS.build(unl_cfg)
        sup = lab[0]
        out = unl[0]

    sample = sup['data_samples']['sup']
    assert sup['inputs']['sup'].shape[-2:] == tuple(sample.img_shape)
    # The one GT square either survived the crop (masks in the view frame) or was dropped.
    assert len(sample.gt_instances) in (0, 1)
    masks = sample.gt_instances.masks
    assert (masks.height, masks.width) == tuple(sample.img_shape)

    t, s = out['data_samples']['unsup_teacher'], out['data_samples']['unsup_student']
    assert sup['inputs']['sup'] is not None
    assert out['inputs']['unsup_teacher'].shape == out['inputs']['unsup_student'].shape
    assert t.img_shape == s.img_shape and t.flip == s.flip
    np.testing.assert_allclose(t.homography_matrix, s.homography_matrix)
    # The resize is recorded in the homography (needed to project pseudo-masks).
    sx = abs(float(t.homography_matrix[0, 0]))
    assert sx == pytest.approx(float(t.scale_factor[0]), rel=1e-3)
    assert len(t.gt_instances) == 0 and len(s.gt_instances) == 0
    if dataset == 'coco':  # large-scale jitter: at most a 1024 x 1024 crop
        assert max(t.img_shape) <= 1024
    if dataset == 'cityscapes':  # landscape image, shorter side >= 512: a 512 x 1024 crop
        assert t.img_shape[0] == 512 and t.img_shape[1] <= 1024


def test_every_s4m_config_has_a_pair():
    """Each stage-2 config names an existing stage-1 config (its teacher) and vice versa."""
    names = {osp.basename(p) for p in glob.glob(osp.join(S4M, '*.py'))}
    stage2 = sorted(n for n in names if n.startswith('gd_'))
    assert len(stage2) == 17
    for n in stage2:
        with open(osp.join(S4M, n)) as f:
            text = ''.join(line.lstrip('#').strip() for line in f if line.startswith('#'))
        teacher = re.search(r'checkpoint of\s*([\w.-]+_sup-[\d.]+-\w+\.py)>', text)
        assert teacher and teacher.group(1) in names, (n, text)
        fraction_ds = n.split('_semi-')[1]
        assert teacher.group(1).endswith('_sup-' + fraction_ds)


# --------------------------------------------------------------------------------------
# S4M configs: every S4M value of the official code (cvlab-kaist/S4M `modules/train_loop.py`,
# `modules/augmentation.py`, `config/add_cfg.py`, `criterion.py::loss_dec_cossim_v1`).
S4M_STAGE2 = {
    'mask2former-coco': ('s4m_mask2former_r50_368k_semi-{}-coco.py', COCO_FRACTIONS, 'uniform'),
    'mask2former-cityscapes': ('s4m_mask2former_r50_90k_semi-{}-cityscapes.py',
                               CITY_FRACTIONS, 'static'),
    'mask-rcnn-coco': ('s4m_mask-rcnn_r50_fpn_180k_semi-{}-coco.py', COCO_FRACTIONS, 'uniform'),
    'mask-rcnn-cityscapes': ('s4m_mask-rcnn_r50_fpn_48k_semi-{}-cityscapes.py',
                             CITY_FRACTIONS, 'static'),
    # mmssis' VOC protocol (no official VOC run): the COCO settings (`AUG_STATIC False`).
    'mask-rcnn-voc': ('s4m_mask-rcnn_r50_fpn_40k_semi-{}-voc.py', VOC_FRACTIONS, 'uniform'),
}
S4M_STAGE1 = {
    'mask2former-coco': ('s4m-distill_mask2former_r50_368k_sup-{}-coco.py', COCO_FRACTIONS,
                         'SamDistillMask2Former'),
    'mask2former-cityscapes': ('s4m-distill_mask2former_r50_90k_sup-{}-cityscapes.py',
                               CITY_FRACTIONS, 'SamDistillMask2Former'),
    'mask-rcnn-coco': ('s4m-distill_mask-rcnn_r50_fpn_90k_sup-{}-coco.py', COCO_FRACTIONS,
                       'SamDistillMaskRCNN'),
    'mask-rcnn-cityscapes': ('s4m-distill_mask-rcnn_r50_fpn_24k_sup-{}-cityscapes.py',
                             CITY_FRACTIONS, 'SamDistillMaskRCNN'),
    'mask-rcnn-voc': ('s4m-distill_mask-rcnn_r50_fpn_20k_sup-{}-voc.py', VOC_FRACTIONS,
                      'SamDistillMaskRCNN'),
}


def _check_sam2_hiera_l(sam):
    assert sam.type == 'mmssis.Sam2Backend'
    assert sam.config == 'configs/sam2/sam2_hiera_l.yaml'  # SSL.SAM_TYPE 'large'
    assert osp.basename(sam.checkpoint) == 'sam2_hiera_large.pt'
    assert sam.get('image_size') is None  # 1024
    assert sam.get('device') is None  # follows the detector (GPU in a GPU run)


@pytest.mark.parametrize('key', sorted(S4M_STAGE1))
def test_s4m_stage1_distillation_values(key):
    name, fractions, det_type = S4M_STAGE1[key]
    for fraction in fractions:
        cfg = _load(name.format(fraction))
        plain = _load(name.format(fraction).replace('s4m-distill_', ''))
        assert cfg.model.type == f'mmssis.{det_type}'
        d = cfg.model.distill
        assert d.type == 'mmssis.SamStructuralDistiller'
        assert (d.num_inside, d.num_uniform) == (64, 64)  # extract_point_gt_rand(128)
        assert d.beta == pytest.approx(1.0) and d.loss_weight == pytest.approx(1.0)
        assert d.sam_input == 'view' and d.cache_targets is False  # redrawn every step
        _check_sam2_hiera_l(d.sam)
        # Everything else is the supervised teacher recipe.
        model = {k: v for k, v in cfg.model.items() if k not in ('type', 'distill')}
        assert model == {k: v for k, v in plain.model.items() if k != 'type'}
        assert cfg.train_dataloader == plain.train_dataloader
        assert cfg.optim_wrapper == plain.optim_wrapper
        assert cfg.train_cfg == plain.train_cfg
        # The stage-1 view carries the homography the geometry-dependent parts need.
        pack = cfg.train_dataloader.dataset.pipeline[-1]
        assert pack.type == 'PackDetInputs' and 'homography_matrix' in pack.meta_keys


@pytest.mark.parametrize('key', sorted(S4M_STAGE2))
def test_s4m_stage2_refinement_arp_and_augmentation_values(key):
    name, fractions, placement = S4M_STAGE2[key]
    for fraction in fractions:
        cfg = _load(name.format(fraction))
        semi = _load(name.format(fraction).replace('s4m_', 'gd_'))
        st = cfg.model.semi_train_cfg
        ref = st.sam_refiner
        assert ref.type == 'mmssis.SamMaskRefiner' and ref.embed_on == 'view'
        r = ref
        assert r.num_points == 3 and r.point_region == 'all'  # softmax over all pixels
        assert r.multimask is True and r.fusion == 'replace'  # argmax predicted IoU, replace
        assert r.use_box is False and r.iou_thr is None and r.min_teacher_iou is None
        # SAM's mask replaces the teacher's unconditionally; SAM sees the padded canvas.
        assert r.empty_fallback is False and ref.view_extent == 'canvas'
        _check_sam2_hiera_l(r.backend)
        arp = st.instance_mixer
        assert arp.type == 'mmssis.ARPInstanceMixer'
        assert arp.num_pairs is None and arp.prob == pytest.approx(1.0)  # max(1, B // 4)
        assert arp.min_area == 3000 and tuple(arp.scale_range) == (0.8, 1.2)
        assert arp.placement == placement
        # Official paste order (instance order, later on top) and mutually exclusive masks.
        assert arp.paste_order == 'instance' and arp.occlusion == 'exclusive'
        assert arp.min_kept_area == 1
        aug = st.student_augment
        assert aug.type == 'mmssis.StudentPhotometricAugment'
        assert (aug.brightness, aug.contrast, aug.saturation, aug.hue) == (0.4, 0.4, 0.4, 0.1)
        assert aug.jitter_prob == pytest.approx(0.8)
        assert aug.grayscale_prob == pytest.approx(0.2)
        assert aug.blur_prob == pytest.approx(0.5) and tuple(aug.blur_sigma) == (0.1, 2.0)
        # The student branch is geometry-only: its photometric augmentation follows ARP.
        unl = cfg.train_dataloader.dataset.datasets[1]
        branch = unl.pipeline[-1]
        assert [t.type for t in branch.unsup_student] == ['PackDetInputs']
        assert 'homography_matrix' in branch.unsup_student[0].meta_keys
        semi_pipeline = semi.train_dataloader.dataset.datasets[1].pipeline[:-1]
        if 'cityscapes' in key:
            # The weak view's SSD colour jitter moves into the teacher branch (officially
            # the student view, `image_wo_weak`, never gets it).
            assert [t.type for t in branch.unsup_teacher] == ['PhotoMetricDistortion',
                                                               'PackDetInputs']
            assert unl.pipeline[:-1] == [t for t in semi_pipeline
                                         if t.type != 'PhotoMetricDistortion']
        else:
            assert [t.type for t in branch.unsup_teacher] == ['PackDetInputs']
            assert unl.pipeline[:-1] == list(semi_pipeline)
        assert unl.ann_file == semi.train_dataloader.dataset.datasets[1].ann_file
        # Everything else is the semi-supervised recipe of the matching `semi_` config.
        for k in ('score_thr', 'unsup_weight', 'sup_weight', 'mask_thr', 'min_mask_area',
                  'init_student_from_teacher'):
            assert st[k] == semi.model.semi_train_cfg[k]
        assert cfg.model.detector == semi.model.detector
        assert cfg.custom_hooks == semi.custom_hooks
        assert cfg.optim_wrapper == semi.optim_wrapper and cfg.train_cfg == semi.train_cfg
        assert cfg.train_dataloader.sampler == semi.train_dataloader.sampler


def test_every_s4m_stage2_names_its_distilled_teacher():
    names = {osp.basename(p) for p in glob.glob(osp.join(S4M, '*.py'))}
    # (the 1-GPU recipe variant of one config is not a paper configuration)
    stage2 = sorted(n for n in names if n.startswith('s4m_') and not n.endswith('-1gpu.py'))
    assert len(stage2) == 17
    for n in stage2:
        with open(osp.join(S4M, n)) as f:
            text = ''.join(line.lstrip('#').strip() for line in f if line.startswith('#'))
        teacher = re.search(r'checkpoint of\s*(s4m-distill_[\w.-]+_sup-[\d.]+-\w+\.py)>', text)
        assert teacher and teacher.group(1) in names, (n, text)
        assert teacher.group(1).endswith('_sup-' + n.split('_semi-')[1])


def test_metafile_lists_every_s4m_config_with_its_paper_figure():
    import yaml
    with open(osp.join(S4M, 'metafile.yml')) as f:
        models = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    names = {osp.basename(p)[:-3] for p in glob.glob(osp.join(S4M, '*.py'))}
    assert set(models) == names
    for name, m in models.items():
        assert osp.isfile(osp.join(REPO, m['Config'])) and m['Config'].endswith(name + '.py')
    paper = {'0.01-coco': 24.2, '0.02-coco': 28.1, '0.05-coco': 32.1, '0.1-coco': 34.6,
             '0.05-cityscapes': 30.1, '0.1-cityscapes': 33.3, '0.2-cityscapes': 37.3,
             '0.3-cityscapes': 37.8}
    for key, ap in paper.items():
        it = '368k' if key.endswith('coco') else '90k'
        m = models[f's4m_mask2former_r50_{it}_semi-{key}']
        assert m['Results'][0]['Metrics']['mask AP'] == ap
        assert 'SAM 2 Hiera-L' in m['Metadata']['SAM']
        # The released teachers were trained with SAM distillation (SSL.USE_SAM True).
        assert models[f's4m-distill_mask2former_r50_{it}_sup-{key}']['Results']
        assert not models[f'mask2former_r50_{it}_sup-{key}']['Results']



@pytest.mark.slow
def test_metafile_resources_and_collections_are_the_configs():
    """Each metafile entry states the GPUs x per-GPU batch of its config's recipe, and its
    collection's optimiser / precision are the config's (Mask2Former: AdamW + AMP; Mask
    R-CNN: SGD with momentum, fp32)."""
    import yaml
    with open(osp.join(S4M, 'metafile.yml')) as f:
        meta = yaml.safe_load(f)
    techniques = {c['Name']: c['Metadata']['Training Techniques'] for c in meta['Collections']}
    assert all('Training Resources' not in c['Metadata'] for c in meta['Collections'])
    for m in meta['Models']:
        cfg = Config.fromfile(osp.join(REPO, m['Config']))
        ow, loader = cfg.optim_wrapper, cfg.train_dataloader
        tech = techniques[m['In Collection']]
        assert (ow.type == 'AmpOptimWrapper') == ('Mixed Precision Training' in tech), m['Name']
        assert {'AdamW': 'AdamW', 'SGD': 'SGD with Momentum'}[ow.optimizer.type] in tech
        ratio = loader.sampler.get('source_ratio')
        per = f'({ratio[0]} + {ratio[1]})' if ratio else str(loader.batch_size)
        resources = m['Metadata']['Training Resources']
        if m['Name'].endswith('-1gpu'):
            assert resources.startswith(f'1 GPU x {per} images'), resources
            continue
        gpus, batch = cfg.recipe_gpus, cfg.recipe_gpus * loader.batch_size
        assert batch == cfg.auto_scale_lr.base_batch_size, m['Name']
        assert resources.startswith(f'{gpus} GPUs x {per} image'), (m['Name'], resources)
        assert resources.endswith(f'(global batch {batch})'), (m['Name'], resources)


def test_one_line_sam_override_builds_vit_h_config(tmp_path):
    """The documented one-line switch from SAM 2 Hiera-L to segment-anything ViT-H."""
    user = tmp_path / 'my_s4m_vit_h.py'
    user.write_text(
        f"_base_ = '{osp.join(S4M, 's4m_mask2former_r50_368k_semi-0.01-coco.py')}'\n"
        "model = dict(semi_train_cfg=dict(sam_refiner=dict(backend=dict("
        "_delete_=True, type='mmssis.SegmentAnythingBackend', model_type='vit_h', "
        "checkpoint='checkpoints/sam_vit_h_4b8939.pth'))))\n")
    backend = Config.fromfile(str(user)).model.semi_train_cfg.sam_refiner.backend
    assert dict(backend) == dict(type='mmssis.SegmentAnythingBackend', model_type='vit_h',
                                 checkpoint='checkpoints/sam_vit_h_4b8939.pth')
