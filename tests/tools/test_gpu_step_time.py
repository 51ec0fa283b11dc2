"""benchmarks/gpu_step_time.py runs end to end (tiny models, CPU) and writes its report."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_gpu_step_time_smoke_on_cpu(tmp_path):
    out = tmp_path / 'gpu_step_time.md'
    cmd = [sys.executable, 'benchmarks/gpu_step_time.py', '--device', 'cpu', '--tiny',
           '--iters', '1', '--warmup', '1', '--variants', 'stage2_no_sam', 'stage2_sam_cache',
           'stage1_distill', '--out', str(out)]
    env = dict(os.environ, PYTHONPATH=REPO)
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = {r['variant']: r for r in json.loads((tmp_path / 'gpu_step_time.json').read_text())
            ['rows']}
    assert set(rows) == {'stage2_no_sam', 'stage2_sam_cache', 'stage1_distill'}
    assert not [r['error'] for r in rows.values() if 'error' in r]
    assert rows['stage2_sam_cache']['unsup_sam_used'] > 0
    assert rows['stage2_sam_cache']['sam_cache_hit_rate'] > 0  # the replayed batch hits
    assert rows['stage1_distill']['loss_sam_distill'] > 0
    text = out.read_text()
    assert '| stage2_sam_cache |' in text and '--tiny' in text


@pytest.mark.slow
def test_without_gpu_the_report_says_so(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip('a GPU is present')
    out = tmp_path / 'r.md'
    env = dict(os.environ, PYTHONPATH=REPO)
    res = subprocess.run([sys.executable, 'benchmarks/gpu_step_time.py', '--out', str(out)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and 'no GPU' in res.stderr + res.stdout
    assert 'No GPU was available' in out.read_text()
