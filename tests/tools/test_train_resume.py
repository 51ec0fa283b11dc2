"""tools/train.py-style runs: checkpoints load with weights_only=True and --resume continues."""
import json
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmssis.testing.tiny_run import DEMO_SUP_CONFIG, shrink_for_test
from mmssis.utils import adapt_cfg_to_machine

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _cfg(tiny_demo, work_dir, max_iters):
    cfg = Config.fromfile(osp.join(REPO, DEMO_SUP_CONFIG))
    shrink_for_test(cfg, tiny_demo.root, str(work_dir), max_iters=max_iters)
    cfg.model.backbone.pretrained = False  # speed: no ImageNet load needed here
    return adapt_cfg_to_machine(cfg)


def _logged_iters(work_dir):
    iters = []
    for root, _, files in os.walk(work_dir):
        for f in files:
            if f.endswith('.json') and f != 'scalars.json':
                with open(osp.join(root, f)) as fh:
                    for line in fh:
                        rec = json.loads(line)
                        if 'loss' in rec:
                            iters.append(rec['iter'])
    return sorted(iters)


@pytest.mark.slow
def test_resume_continues_at_saved_iteration(tiny_demo, tmp_path):
    work = tmp_path / 'run'
    Runner.from_cfg(_cfg(tiny_demo, work, max_iters=2)).train()
    ckpt = work / 'iter_2.pth'
    assert ckpt.is_file()
    # The checkpoint holds mmengine's numpy/HistoryBuffer meta and still loads safely.
    state = torch.load(ckpt, weights_only=True)
    assert state['meta']['iter'] == 2

    cfg = _cfg(tiny_demo, work, max_iters=4)
    cfg.resume = True
    cfg.load_from = str(ckpt)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 4
    assert (work / 'iter_4.pth').is_file()
    # The resumed run logged iterations 3 and 4 only (it did not restart at 1).
    iters = _logged_iters(work)
    assert iters.count(1) == 1 and iters.count(3) == 1 and max(iters) == 4
