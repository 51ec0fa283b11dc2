"""Stage-2 semi training through mmengine's Runner: runs, saves, resumes teacher + student."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmssis.testing.tiny_run import DEMO_SEMI_CONFIG, DEMO_SUP_CONFIG, shrink_for_test
from mmssis.utils import adapt_cfg_to_machine

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _semi_cfg(tiny_demo, work_dir, max_iters, load_from=None):
    cfg = Config.fromfile(osp.join(REPO, DEMO_SEMI_CONFIG))
    shrink_for_test(cfg, tiny_demo.root, str(work_dir), max_iters=max_iters)
    cfg.model.detector.backbone.pretrained = False
    cfg.model.semi_train_cfg.score_thr = 0.05  # an untrained teacher still gives labels
    cfg.custom_hooks = [dict(type='TeacherScheduleHook', burn_in_iters=1, momentum=0.9)]
    cfg.load_from = load_from
    return adapt_cfg_to_machine(cfg)


@pytest.mark.slow
def test_semi_run_loads_stage1_teacher_and_resumes(tiny_demo, tmp_path):
    # A stage-1 checkpoint: a plain Mask R-CNN state dict.
    sup = Config.fromfile(osp.join(REPO, DEMO_SUP_CONFIG))
    shrink_for_test(sup, tiny_demo.root, str(tmp_path / 'sup'), max_iters=1, ckpt_interval=1)
    sup.model.backbone.pretrained = False
    Runner.from_cfg(adapt_cfg_to_machine(sup)).train()
    stage1 = torch.load(tmp_path / 'sup' / 'iter_1.pth', weights_only=True)['state_dict']

    work = tmp_path / 'semi'
    runner = Runner.from_cfg(_semi_cfg(tiny_demo, work, 2, str(tmp_path / 'sup' / 'iter_1.pth')))
    runner.load_or_resume()
    model = runner.model
    key = 'roi_head.mask_head.conv_logits.weight'
    assert torch.equal(model.teacher.state_dict()[key], stage1[key])
    # the demo starts its student from the stage-1 teacher (init_student_from_teacher);
    # S4M's fresh student (False): tests/models/detectors/test_semi_mask_detector.py
    assert runner.cfg.model.semi_train_cfg.init_student_from_teacher
    assert torch.equal(model.student.state_dict()[key], stage1[key])
    runner.train()
    saved = torch.load(work / 'iter_2.pth', weights_only=True)
    # hard copy after step 1, EMA after step 2; the schedule follows from the iteration
    # (nothing of it in meta), the message hub mirrors it
    assert 'teacher_schedule' not in saved['meta']
    assert saved['message_hub']['runtime_info']['teacher_schedule'] == dict(
        burned_in=True, last_update_iter=2, num_ema_updates=1, burn_in_iters=1)
    assert any(k.startswith('teacher.') for k in saved['state_dict'])
    assert any(k.startswith('student.') for k in saved['state_dict'])

    cfg = _semi_cfg(tiny_demo, work, 3)
    cfg.resume = True
    cfg.load_from = str(work / 'iter_2.pth')
    resumed = Runner.from_cfg(cfg)
    resumed.load_or_resume()
    state = resumed.model.state_dict()
    for k, v in saved['state_dict'].items():
        assert torch.equal(state[k], v.to(state[k].dtype)), k
    assert resumed.iter == 2
