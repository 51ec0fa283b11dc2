"""Config helpers for the reliability end-to-end runs (not a test module)."""
import os
import os.path as osp
import socket
import sys
from typing import Dict, Optional

from mmengine.config import Config

from mmssis.testing.tiny_run import DEMO_SEMI_CONFIG, shrink_for_test

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
PYTHON = sys.executable
REFINE_CONFIG = osp.join(
    REPO, 'configs/demo/s4m-refine_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py')


def speed_up(cfg: Config, scale: int = 128) -> Config:
    """Shrink the demo Mask R-CNN (32-ch FPN, fewer proposals/RoIs) and the image scale.

    The demo model at 256 px costs ~10 s of CPU per semi iteration; this brings it to
    ~1 s so that several short runs fit in a test.
    """
    det = cfg.model.detector
    ch = 32
    det.backbone.pretrained = False
    det.neck.out_channels = ch
    det.rpn_head.in_channels = det.rpn_head.feat_channels = ch
    roi = det.roi_head
    roi.bbox_roi_extractor.out_channels = roi.mask_roi_extractor.out_channels = ch
    roi.bbox_head.in_channels, roi.bbox_head.fc_out_channels = ch, 64
    roi.mask_head.in_channels = roi.mask_head.conv_out_channels = ch
    det.train_cfg.rpn.sampler.num = 64
    det.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    det.train_cfg.rcnn.sampler.num = 64
    det.test_cfg.rpn.update(nms_pre=200, max_per_img=100)
    det.test_cfg.rcnn.max_per_img = 10
    for ds in cfg.train_dataloader.dataset.datasets:
        for t in ds.pipeline:
            if t['type'] == 'RandomResize':
                t['scale'] = (scale, scale)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        for t in loader.dataset.pipeline:
            if t['type'] == 'Resize':
                t['scale'] = (scale, scale)
    return cfg


def tiny_sam_refiner(seed: int = 0) -> dict:
    """Stage-2 SAM refiner on the tiny random SAM: 3 sampled points + box, multimask."""
    return dict(type='SamMaskRefiner', embed_on='original',
                backend=dict(type='TinyRandomSamBackend', seed=seed),
                num_points=3, use_box=True, multimask=True, seed=seed,
                cache=dict(max_items=64))


def resume_test_cfg(data_root: str, work_dir: str, max_iters: int = 4) -> Config:
    """Semi demo config for the exact-resume test: SAM refinement (``policy='measured'``,
    decided by ``SamBenefitHook``), ARP, calibration.

    Batch 4 (2 labelled + 2 unlabelled: ARP needs 2 unlabelled images), checkpoints
    every 2 iterations, deterministic kernels, raw per-iteration losses in the json log
    (``window_size=1``).
    """
    cfg = Config.fromfile(osp.join(REPO, DEMO_SEMI_CONFIG))
    shrink_for_test(cfg, data_root, work_dir, max_iters=max_iters, ckpt_interval=2,
                    batch_size=4)
    speed_up(cfg)
    semi = cfg.model.semi_train_cfg
    # tools/train.py refuses stage 2 without the stage-1 teacher (R18): this test trains
    # from a random one on purpose
    cfg.allow_untrained_teacher = True
    # an untrained teacher still gives pseudo-labels: low score and mask thresholds (its
    # random mask logits sit around 0)
    semi.score_thr = 0.05
    semi.mask_thr = 0.05
    semi.sam_refiner = tiny_sam_refiner()
    semi.sam_refiner.policy = 'measured'
    semi.instance_mixer = dict(type='ARPInstanceMixer', min_area=50,  # seed None: the run's seed
                                num_pairs=1)  # 2 unlabelled per process: mix both
    cfg.custom_hooks = [
        dict(type='TeacherScheduleHook', burn_in_iters=1, momentum=0.9),
        dict(type='ConfidenceCalibrationHook', interval=2, max_images=2,
             calibrate_at_start=False, min_thr=0.05, max_thr=0.1, min_support=1),
        # the untrained teacher's masks rarely match GT: undecided classes are refined
        dict(type='SamBenefitHook', interval=2, max_images=2, min_support=1,
             refine_undecided=True),
    ]
    cfg.train_cfg.val_begin = 10**9  # no validation at the last iteration either
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.log_processor.window_size = 1
    cfg.custom_imports = dict(imports=['rel_plugins'], allow_failed_imports=False)
    return cfg


#: Paper configs of the exact-resume test: stage 2 (refinement, ARP, student augmentation)
#: and stage 1 (structural distillation), with their per-iteration batch.
PAPER_RESUME = {
    'paper-s4m': ('configs/s4m/s4m_mask2former_r50_368k_semi-0.01-coco.py', 6),
    'paper-s4m-distill': ('configs/s4m/s4m-distill_mask2former_r50_368k_sup-0.01-coco.py', 2),
}


def paper_resume_cfg(name: str, data_root: str, work_dir: str, sam_backend: dict,
                     max_iters: int = 4) -> Config:
    """A tiny paper config (``PAPER_RESUME``) for the exact-resume test: every S4M part at
    its paper setting, a random teacher whose candidates all pass (score 0), the teacher
    schedule burnt in after iteration 1 (EMA after), checkpoints every 2 iterations,
    deterministic kernels, raw per-iteration losses."""
    from mmssis.demo import DEMO_CLASSES
    from mmssis.testing.paper_run import shrink_paper_config
    path, batch_size = PAPER_RESUME[name]
    stage2 = 'semi' in osp.basename(path)
    cfg = shrink_paper_config(Config.fromfile(osp.join(REPO, path)), data_root, work_dir,
                              sam_backend, DEMO_CLASSES, max_iters=max_iters,
                              batch_size=batch_size,
                              semi_overrides=dict(score_thr=0.0) if stage2 else None)
    cfg.default_hooks.checkpoint.interval = 2
    for hook in cfg.get('custom_hooks') or []:
        if hook.get('type', '').endswith('TeacherScheduleHook'):
            hook['burn_in_iters'] = 1
    if stage2:
        cfg.allow_untrained_teacher = True  # a random teacher on purpose (R18)
    cfg.randomness = dict(seed=0, deterministic=True)
    return cfg


def subprocess_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for ``tools/train.py`` subprocesses: repo + this folder importable.

    One OpenMP/MKL thread: on a shared, oversubscribed CPU box two spinning OpenMP threads
    make convolutions up to 100x slower; a fixed count also keeps runs bit-comparable.
    """
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join([REPO, HERE, env.get('PYTHONPATH', '')]).rstrip(
        os.pathsep)
    env['PYTHONWARNINGS'] = 'ignore'
    env.setdefault('MPLBACKEND', 'Agg')
    env.update(extra or {})
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
