"""R11: distributed (gloo, CPU) runs.

* ``tools/dist_train.sh CFG 2`` on a config inheriting the S4M stage-2 demo config
  (semi-supervised, real LiteMedSAM refinement, ARP, confidence calibration) completes;
  only rank 0 writes the log and the checkpoint; the ranks end with identical student and
  teacher parameters and identical calibrated thresholds.
* Two-process gloo checks of the collective parts (``rel_dist.py``): calibration
  thresholds are identical on every rank (all-gathered detections), and each rank derives
  its own random streams.
"""
import glob
import os
import os.path as osp
import subprocess

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.config import Config

from mmssis.evaluation import select_thresholds
from mmssis.testing.tiny_run import shrink_for_test
from rel_configs import PYTHON, REFINE_CONFIG, REPO, free_port, speed_up, subprocess_env
from rel_dist import WORLD, calibration_records, worker

# Every test here starts processes (two gloo ranks, or tools/dist_train.sh).
pytestmark = pytest.mark.slow


# ------------------------------------------------------------------ gloo checks
@pytest.fixture(scope='module')
def gloo_results(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('gloo'))
    mp.spawn(worker, args=(free_port(), out), nprocs=WORLD, join=True)

    def load(name):
        return [torch.load(osp.join(out, f'{name}_rank{r}.pth'), weights_only=True)
                for r in range(WORLD)]

    return load


def test_calibration_thresholds_identical_across_ranks(gloo_results):
    r0, r1 = gloo_results('calibration')
    assert r0['thresholds'] == r1['thresholds']
    assert torch.equal(r0['class_score_thr'], r1['class_score_thr'])
    union = [calibration_records(r) for r in range(WORLD)]
    expected = select_thresholds(
        *[torch.cat([torch.as_tensor(u[k]) for u in union]).numpy()
          for k in ('scores', 'labels', 'correct')], num_classes=2, target_precision=0.8,
        min_thr=0.1, max_thr=0.95, default=0.7, min_support=3)
    assert r0['thresholds'] == [float(t) for t in expected]
    # The ranks' own data alone would give other thresholds: the gather matters.
    alone = select_thresholds(union[1]['scores'], union[1]['labels'], union[1]['correct'],
                              num_classes=2, target_precision=0.8, min_thr=0.1,
                              max_thr=0.95, default=0.7, min_support=3)
    assert [float(t) for t in alone] != r1['thresholds']


def test_derived_streams_differ_per_rank_and_repeat(gloo_results):
    r0, r1 = gloo_results('rng')
    for res in (r0, r1):  # derived again at the same step and rank: the same draws
        assert res['arp'][0] == res['arp'][1] and res['points'][0] == res['points'][1]
    assert r0['arp'][0] != r1['arp'][0] and r0['points'][0] != r1['points'][0]


# ------------------------------------------------------------------ dist_train.sh
def _dist_cfg_text(data_root: str) -> str:
    """A config inheriting the S4M refine demo config, shrunk to 2 fast iterations."""
    base = Config.fromfile(REFINE_CONFIG)
    shrink_for_test(base, data_root, 'unused', max_iters=2, ckpt_interval=2, batch_size=4)
    speed_up(base)
    det = base.model.detector
    overrides = dict(
        custom_imports=dict(imports=['rel_plugins'], allow_failed_imports=False),
        allow_untrained_teacher=True,  # a random teacher on purpose (R18 of reliability.md)
        model=dict(
            detector=dict(neck=det.neck.to_dict(), rpn_head=det.rpn_head.to_dict(),
                          roi_head=det.roi_head.to_dict(), train_cfg=det.train_cfg.to_dict(),
                          test_cfg=det.test_cfg.to_dict(),
                          backbone=dict(pretrained=False)),
            semi_train_cfg=dict(
                score_thr=0.05,
                instance_mixer=dict(type='ARPInstanceMixer', min_area=50, num_pairs=1),
                # Real LiteMedSAM (box prompts), at most 4 pseudo-labels refined per image.
                sam_refiner=dict(backend=dict(max_prompts_per_call=4))),
        ),
        train_dataloader=dict(batch_size=4, num_workers=0, persistent_workers=False,
                              sampler=dict(batch_size=4, source_ratio=[2, 2]),
                              dataset=dict(datasets=[
                                  d.to_dict() for d in base.train_dataloader.dataset.datasets])),
        val_dataloader=base.val_dataloader.to_dict(),
        test_dataloader=base.test_dataloader.to_dict(),
        val_evaluator=base.val_evaluator.to_dict(),
        test_evaluator=base.test_evaluator.to_dict(),
        train_cfg=dict(max_iters=2, val_interval=10**9, val_begin=10**9),
        param_scheduler=[dict(type='ConstantLR', factor=1.0, by_epoch=False)],
        default_hooks=dict(checkpoint=dict(interval=2), logger=dict(interval=1)),
        custom_hooks=[
            dict(type='TeacherScheduleHook', burn_in_iters=1, momentum=0.9),
            dict(type='ConfidenceCalibrationHook', interval=1, max_images=4,
                 calibrate_at_start=False, min_thr=0.05, max_thr=0.1, min_support=1),
            dict(type='RankStateDumpHook'),
        ],
        visualizer=dict(vis_backends=[dict(type='LocalVisBackend')]),
    )
    for key in ('val_dataloader', 'test_dataloader'):
        overrides[key]['_delete_'] = True
    lines = [f'_base_ = {REFINE_CONFIG!r}']
    lines += [f'{key} = {value!r}' for key, value in overrides.items()]
    return '\n'.join(lines) + '\n'


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_dist_train_sh_two_processes(tiny_demo, tmp_path):
    cfg_path = tmp_path / 'dist_cfg.py'
    cfg_path.write_text(_dist_cfg_text(tiny_demo.root))
    work = tmp_path / 'work'
    env = subprocess_env(dict(PYTHON=PYTHON, PORT=str(free_port())))
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), str(cfg_path),
                           '2', '--work-dir', str(work)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=380)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]

    # Rank 0 only: one checkpoint, one text log, one json log.
    assert sorted(os.listdir(work / 'rank_state')) == ['rank0.pth', 'rank1.pth']
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_2.pth']
    logs = glob.glob(str(work / '*' / '*.log'))
    assert len(logs) == 1 and 'rank' not in osp.basename(logs[0])
    assert len(glob.glob(str(work / '*' / 'vis_data' / '*.json'))) >= 1
    text = open(logs[0]).read()
    assert 'Iter(train) [2/2]' in text and 'Distributed training: True' in text
    assert 'unsup_sam_used' in text and 'arp_pairs' in text  # SAM and ARP ran

    ckpt = torch.load(work / 'iter_2.pth', weights_only=True)
    assert 'rng_state' not in ckpt['meta']  # no generator state: streams are derived
    ranks = [torch.load(work / 'rank_state' / f'rank{r}.pth', weights_only=True)
             for r in range(2)]
    # Calibrated per-class thresholds: identical on both ranks (all-gathered).
    assert ranks[0]['class_score_thr'] is not None
    assert torch.equal(ranks[0]['class_score_thr'], ranks[1]['class_score_thr'])
    assert torch.equal(torch.tensor(ckpt['meta']['calibration']['thresholds']),
                       ranks[0]['class_score_thr'])
    # Parameters (student: DDP-synchronised gradients; teacher: EMA of them) agree.
    params = {n for n, p in _named_params(ckpt['state_dict'])}
    for name in params:
        assert torch.equal(ranks[0]['state_dict'][name], ranks[1]['state_dict'][name]), name


def _named_params(state_dict):
    """Parameter entries (not BN running statistics / counters) of a state dict."""
    for name, value in state_dict.items():
        if not any(s in name for s in ('running_mean', 'running_var', 'num_batches_tracked')):
            yield name, value
