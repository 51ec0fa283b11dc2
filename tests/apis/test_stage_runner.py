"""StageRunner: a stage graph of real tools/train.py runs (tiny), parallel, evaluated."""
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config

from mmssis.apis import StageRunner
from mmssis.testing.tiny_run import DEMO_SEMI_CONFIG, DEMO_SUP_CONFIG, shrink_for_test

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _dump(config, tiny_demo, tmp_path, name, semi=False):
    cfg = Config.fromfile(osp.join(REPO, config))
    shrink_for_test(cfg, tiny_demo.root, str(tmp_path / name), max_iters=1, ckpt_interval=1)
    det = cfg.model.detector if semi else cfg.model
    det.backbone.pretrained = False
    if semi:
        cfg.model.semi_train_cfg.score_thr = 0.05
    path = str(tmp_path / f'{name}.py')
    cfg.dump(path)
    return path


@pytest.mark.slow
def test_stage_graph_runs_dependants_after_their_teacher(tiny_demo, tmp_path):
    sup = _dump(DEMO_SUP_CONFIG, tiny_demo, tmp_path, 'cfg_sup')
    semi = _dump(DEMO_SEMI_CONFIG, tiny_demo, tmp_path, 'cfg_semi', semi=True)
    stages = [dict(name='a', config=sup, row='a'),
              dict(name='b', config=semi, row='b', load_from='a'),
              dict(name='c', config=sup, row=None)]
    runner = StageRunner(stages, str(tmp_path / 'runs'), jobs=2)
    runner.run()
    for name in 'abc':
        assert osp.isfile(tmp_path / 'runs' / name / 'final.pth')
    assert set(runner.metrics) == {'a', 'b'}  # 'c' has no row: not evaluated
    for name in 'ab':
        with open(tmp_path / 'runs' / name / 'eval' / 'metrics.json') as f:
            assert json.load(f) == runner.metrics[name]
        assert 0.0 <= runner.metrics[name]['coco/segm_mAP'] <= 1.0
    # b's teacher was a's checkpoint
    log = (tmp_path / 'runs' / 'b' / 'train.log').read_text()
    assert osp.join(str(tmp_path / 'runs'), 'a', 'final.pth') in log
    assert runner.threads == max(1, (os.cpu_count() or 1) // 2)  # CPUs split over jobs

    # done stages are skipped (checkpoint and metrics reused), a failing stage is reported
    again = StageRunner(stages[:2] + [dict(name='d', config=str(tmp_path / 'nope.py'),
                                           row='d', load_from='a')],
                        str(tmp_path / 'runs'), jobs=2)
    with pytest.raises(RuntimeError, match="stage 'd' failed"):
        again.run()
    assert again.metrics['a'] == runner.metrics['a']


def test_unknown_dependency_is_an_error_before_anything_runs(tmp_path):
    runner = StageRunner([dict(name='b', config='x.py', load_from='a')], str(tmp_path))
    with pytest.raises(RuntimeError, match=r"'b' waits for unknown stage\(s\) \['a'\]"):
        runner.run()
    assert not (tmp_path / 'b').exists()


@pytest.mark.slow
def test_command_stage_runs_once(tmp_path):
    import sys
    marker = tmp_path / 'count.txt'
    cmd = [sys.executable, '-c',
           f"p = {str(marker)!r}; import os; n = int(open(p).read()) if os.path.exists(p) "
           "else 0; open(p, 'w').write(str(n + 1))"]
    for _ in range(2):
        StageRunner([dict(name='c', command=cmd)], str(tmp_path / 'runs')).run()
    assert marker.read_text() == '1'  # the second run found c/done


def test_project_root_of_a_source_checkout_and_of_an_installed_package(tmp_path):
    """Stages start ``tools/train.py`` from the checkout, or from the ``.mim`` copy that
    ``setup.py`` puts inside an installed package (no source checkout there)."""
    from mmssis.apis.stages import PKG, project_root
    assert project_root() == REPO and project_root(PKG) == REPO
    site = tmp_path / 'site-packages' / 'mmssis'
    (site / '.mim' / 'tools').mkdir(parents=True)
    (site / '.mim' / 'tools' / 'train.py').write_text('')
    assert project_root(str(site)) == str(site / '.mim')
    with pytest.raises(FileNotFoundError, match='no tools/train.py'):
        project_root(str(tmp_path / 'broken' / 'mmssis'))


def test_an_evaluation_holds_no_slot_and_delays_no_dependant(tmp_path, monkeypatch):
    """With one job, ``b`` (loading ``a``) trains while ``a`` is still being evaluated."""
    import threading
    import time

    import mmssis.apis.stages as stages_mod
    events, lock = [], threading.Lock()

    def log(what):
        with lock:
            events.append(what)

    def fake_train(config, work_dir, load_from=None, **kwargs):
        log(f'train {osp.basename(work_dir)}')
        os.makedirs(work_dir, exist_ok=True)
        ckpt = osp.join(work_dir, 'final.pth')
        open(ckpt, 'w').close()
        return ckpt

    def fake_eval(config, checkpoint, work_dir, threads=None):
        name = osp.basename(osp.dirname(work_dir))
        log(f'eval {name} start')
        time.sleep(1.5 if name == 'a' else 0.0)
        log(f'eval {name} end')
        return {'coco/segm_mAP': 0.5}

    monkeypatch.setattr(stages_mod, 'train_stage', fake_train)
    monkeypatch.setattr(stages_mod, 'evaluate_checkpoint_subprocess', fake_eval)
    stages = [dict(name='a', config='a.py', row='a'),
              dict(name='b', config='b.py', row='b', load_from='a')]
    runner = StageRunner(stages, str(tmp_path), jobs=1)
    runner.run()
    assert events.index('train b') < events.index('eval a end')
    assert set(runner.metrics) == {'a', 'b'}


def test_command_stage_reruns_when_its_input_checkpoint_is_newer(tmp_path):
    import sys
    import time
    marker = tmp_path / 'count.txt'
    cmd = [sys.executable, '-c',
           f"p = {str(marker)!r}; import os; n = int(open(p).read()) if os.path.exists(p) "
           "else 0; open(p, 'w').write(str(n + 1))"]
    ckpt = tmp_path / 'runs' / 'a' / 'final.pth'
    ckpt.parent.mkdir(parents=True)
    ckpt.write_text('x')
    stages = [dict(name='a', command=[sys.executable, '-c', 'pass']),
              dict(name='c', command=cmd, after=['a'])]
    StageRunner(stages, str(tmp_path / 'runs')).run()
    StageRunner(stages, str(tmp_path / 'runs')).run()
    assert marker.read_text() == '1'  # up to date: not run again
    time.sleep(0.05)
    ckpt.write_text('retrained')
    os.utime(ckpt, (time.time() + 5, time.time() + 5))
    StageRunner(stages, str(tmp_path / 'runs')).run()
    assert marker.read_text() == '2'
