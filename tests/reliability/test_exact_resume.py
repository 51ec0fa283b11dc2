"""R9: ``kill -9`` in the middle of a run, then ``--resume``, equals the uninterrupted run.

No RNG hook and no generator state in the checkpoint: every stochastic part derives its
draws from the step (``mmssis/utils/rank_seed.py``). Three ``tools/train.py`` subprocesses
on the same config (``randomness=dict(seed=0, deterministic=True)``, ``num_workers=0``),
for each of: the semi demo config shrunk (SAM refinement with point sampling, ARP,
confidence calibration, SAM benefit, EMA teacher), the tiny paper S4M stage-2 config
(SAM 2 refinement, ARP, student augmentation, EMA teacher) and the tiny paper stage-1
config (structural distillation, points drawn anew every step):

A. 4 iterations uninterrupted;
B. the same, killed with SIGKILL as soon as ``iter_2.pth`` is complete;
C. ``--resume`` in B's work dir up to iteration 4.

The per-iteration losses of iterations 3-4 (raw values: ``window_size=1``), the final
student/teacher state dicts, the EMA schedule and calibration state of C equal A's bit
for bit (CPU, same thread count). Subprocesses keep ``torch.use_deterministic_algorithms``
(set by mmengine for ``deterministic=True``) out of the pytest process.
"""
import json
import math
import os
import os.path as osp
import signal
import subprocess
import time

import pytest
import torch

from rel_configs import (PAPER_RESUME, PYTHON, REPO, paper_resume_cfg, resume_test_cfg,
                         subprocess_env)

TRAIN = osp.join(REPO, 'tools', 'train.py')
#: Logged values that are timings or otherwise not part of the training state.
# sam_cache_hit_rate: the in-memory SAM embedding cache is not checkpointed (a disk cache
# survives), so after a resume its hits start from zero (SamBenefitHook's measurements hit
# it in the uninterrupted run); not training state.
NOT_STATE = {'time', 'data_time', 'eta', 'memory', 'step', 'iter', 'epoch',
             'sam_cache_hit_rate'}


def _same(a, b):
    """Exact equality of nested containers, with NaN equal to NaN (e.g. class ECE)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def _train(cfg_path, work_dir, *extra):
    # Output to a file, not a pipe: nobody reads a pipe while waiting for the checkpoint,
    # and a full pipe (Mask2Former's paramwise lines) would block the run.
    os.makedirs(work_dir, exist_ok=True)
    log = open(osp.join(work_dir, f'stdout_{len(os.listdir(work_dir))}.txt'), 'w+')
    proc = subprocess.Popen([PYTHON, TRAIN, cfg_path, '--work-dir', work_dir, *extra],
                            cwd=REPO, env=subprocess_env(), stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    proc.log = log
    return proc


def _output(proc):
    proc.log.flush()
    proc.log.seek(0)
    return proc.log.read()


def _finish(proc, timeout=300):
    proc.wait(timeout=timeout)
    out = _output(proc)
    proc.log.close()
    assert proc.returncode == 0, out[-4000:]
    return out


def _iter_logs(work_dir, skip_dirs=()):
    """{iteration: logged scalars} from the json logs of ``work_dir`` (by run folder)."""
    logs = {}
    for entry in sorted(os.listdir(work_dir)):
        vis = osp.join(work_dir, entry, 'vis_data')
        if entry in skip_dirs or not osp.isdir(vis):
            continue
        for name in os.listdir(vis):
            if name.endswith('.json') and name != 'scalars.json':
                with open(osp.join(vis, name)) as f:
                    for line in f:
                        rec = json.loads(line)
                        if 'loss' in rec:
                            logs[rec['iter']] = rec
    return logs


def _run_dirs(work_dir):
    return {d for d in os.listdir(work_dir) if osp.isdir(osp.join(work_dir, d, 'vis_data'))}


def _kill_after_checkpoint(proc, work_dir, name, timeout=240):
    """SIGKILL ``proc`` as soon as ``last_checkpoint`` points at ``name`` (file complete)."""
    marker = osp.join(work_dir, 'last_checkpoint')
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f'run ended before {name} was saved:\n{_output(proc)[-4000:]}')
        if osp.isfile(marker):
            with open(marker) as f:
                if f.read().strip().endswith(name):
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(30)
                    proc.log.close()
                    return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f'{name} not saved within {timeout} s')


@pytest.fixture(scope='module')
def tiny_sam2(tmp_path_factory):
    from mmssis.testing.paper_run import save_tiny_sam2
    return save_tiny_sam2(str(tmp_path_factory.mktemp('sam2') / 'tiny_sam2.pt'), 128)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize('name', ['demo-s4m', *sorted(PAPER_RESUME)])
def test_kill9_then_resume_matches_uninterrupted_run(name, tiny_demo, tiny_sam2, tmp_path):
    cfg_path = str(tmp_path / 'resume_cfg.py')
    if name == 'demo-s4m':
        cfg = resume_test_cfg(tiny_demo.root, str(tmp_path / 'unused'))
    else:
        cfg = paper_resume_cfg(name, tiny_demo.root, str(tmp_path / 'unused'), tiny_sam2)
    cfg.dump(cfg_path)
    work_a, work_b = str(tmp_path / 'a'), str(tmp_path / 'b')

    _finish(_train(cfg_path, work_a))
    killed = _train(cfg_path, work_b)
    _kill_after_checkpoint(killed, work_b, 'iter_2.pth')
    assert killed.returncode == -signal.SIGKILL
    assert not osp.exists(osp.join(work_b, 'iter_4.pth'))
    before = _run_dirs(work_b)
    resumed_log = _finish(_train(cfg_path, work_b, '--resume'))
    assert 'Advance dataloader 2 steps' in resumed_log

    logs_a = _iter_logs(work_a)
    logs_c = _iter_logs(work_b, skip_dirs=before)
    assert sorted(logs_c) == [3, 4], 'the resumed run trains iterations 3 and 4 only'
    for it in (3, 4):
        keys = set(logs_a[it]) - NOT_STATE
        assert keys == set(logs_c[it]) - NOT_STATE
        diff = {k: (logs_a[it][k], logs_c[it][k]) for k in keys
                if logs_a[it][k] != logs_c[it][k]}
        assert not diff, f'iteration {it} differs: {diff}'
    # The run exercised the randomised parts after the resume point.
    if name == 'paper-s4m-distill':
        assert logs_c[3]['loss_sam_distill'] > 0
    else:
        assert logs_c[3]['unsup_pseudo_num'] > 0 or logs_c[4]['unsup_pseudo_num'] > 0
    if name == 'paper-s4m':
        assert logs_c[3]['unsup_sam_used'] > 0 and logs_c[3]['arp_pairs'] > 0

    ckpt_a = torch.load(osp.join(work_a, 'iter_4.pth'), weights_only=True)
    ckpt_c = torch.load(osp.join(work_b, 'iter_4.pth'), weights_only=True)
    sd_a, sd_c = ckpt_a['state_dict'], ckpt_c['state_dict']
    assert sd_a.keys() == sd_c.keys()
    if name != 'paper-s4m-distill':
        assert any(k.startswith('teacher.') for k in sd_a)
        assert any(k.startswith('student.') for k in sd_a)
    assert all(torch.equal(sd_a[k], sd_c[k]) for k in sd_a), \
        [k for k in sd_a if not torch.equal(sd_a[k], sd_c[k])][:10]
    for key in ('calibration', 'sam_benefit'):
        if key in ckpt_a['meta'] or key in ckpt_c['meta']:
            assert _same(ckpt_a['meta'][key], ckpt_c['meta'][key]), key
    assert 'rng_state' not in ckpt_c['meta']  # nothing of the generators is saved
    # the teacher schedule follows from the iteration: nothing of it in the checkpoint
    assert 'teacher_schedule' not in ckpt_c['meta']
    if name == 'demo-s4m':  # the demo's calibration / SAM-benefit hooks ran and resumed
        # measured at step 2; step 4 ends the run, so nothing is measured for it
        assert ckpt_c['meta']['sam_benefit']['iter'] == 2
        assert 'SamBenefitHook: restored the state of iter 2' in resumed_log
        assert ckpt_a['meta']['calibration']['thresholds'] is not None
