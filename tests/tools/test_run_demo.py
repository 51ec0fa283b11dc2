"""tools/misc/run_demo.py: the stage graph of make demo."""
import os.path as osp

import pytest

from mmssis.apis import StageRunner
from mmssis.testing.tools import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def run_demo():
    return load_tool('misc/run_demo.py')


def test_stages_pull_in_what_they_need(run_demo):
    names = [s['name'] for s in run_demo.wanted_stages(['s4m'])]
    assert names == ['sam_cache', 's4m_stage1', 's4m']
    assert [s['name'] for s in run_demo.wanted_stages(['semi'])] == ['sup', 'semi']
    with pytest.raises(SystemExit, match='unknown stage'):
        run_demo.wanted_stages(['nope'])


def test_every_dependency_is_listed_before_its_dependants(run_demo):
    seen = set()
    for stage in run_demo.STAGES:
        assert set(StageRunner.dependencies(stage)) <= seen, stage['name']
        seen.add(stage['name'])
        assert osp.isfile(osp.join(REPO, stage['config'])) if 'config' in stage else \
            stage['command']
    rows = [s['row'] for s in run_demo.STAGES if s.get('row')]
    assert {'sup', 'semi', 's4m_refine', 's4m'} <= set(rows)


def test_default_stages_leave_out_the_ablation_row(run_demo):
    default = [s['name'] for s in run_demo.wanted_stages(None)]
    assert 's4m_refine' not in default
    assert {'sup', 's4m_stage1', 'sam_cache', 'semi', 's4m'} == set(default)
    assert [s['name'] for s in run_demo.wanted_stages(None, everything=True)] == \
        [s['name'] for s in run_demo.STAGES]
    assert [s['name'] for s in run_demo.wanted_stages(['s4m_refine'])] == \
        ['sam_cache', 's4m_stage1', 's4m_refine']


def test_stage_options_skip_validation_inside_training(run_demo):
    """The stages are evaluated once afterwards; mmengine's IterBasedTrainLoop also
    validates at the last iteration unless ``val_begin`` is past it."""
    from mmengine.config import Config
    for stage in run_demo.STAGES:
        if 'config' not in stage:
            continue
        cfg = Config.fromfile(osp.join(REPO, stage['config']))
        cfg.merge_from_dict(dict(o.split('=') for o in stage['options']))
        assert int(cfg.train_cfg.val_begin) > cfg.train_cfg.max_iters, stage['name']


def test_results_rows_are_in_stage_order(run_demo):
    done = {'s4m': {}, 'sup': {}, 'extra': {}, 's4m_stage1': {}, 'semi': {}}
    assert list(run_demo.in_stage_order(done)) == ['sup', 's4m_stage1', 'semi', 's4m',
                                                   'extra']
    assert {s['row'] for s in run_demo.STAGES if s.get('row')} <= set(run_demo.ROW_ORDER)


def test_panel_and_quality_are_stages_after_s4m(run_demo, tiny_demo, tmp_path):
    """They start when the S4M stage is trained (beside its evaluation and other stages)."""
    work = str(tmp_path / 'work')
    stages = run_demo.report_stages(run_demo.wanted_stages(None), work, tiny_demo.root,
                                    str(tmp_path / 'panel.png'), str(tmp_path / 'q.json'))
    extra = {s['name']: s for s in stages[-2:]}
    assert set(extra) == {'panel', 'quality'}
    for stage in extra.values():
        assert stage['after'] == ['s4m'] and stage['row'] is None
        assert osp.join(work, 's4m', 'final.pth') in stage['command']
    assert str(tmp_path / 'q.json') in extra['quality']['command']
    assert osp.isfile(osp.join(work, 'unlabelled_gt.json'))  # the scores' ground truth
    no_panel = run_demo.report_stages(run_demo.wanted_stages(None), work, tiny_demo.root,
                                      None, str(tmp_path / 'q.json'))
    assert [s['name'] for s in no_panel[-1:]] == ['quality']
    semi_only = run_demo.wanted_stages(['semi'])
    assert run_demo.report_stages(semi_only, work, tiny_demo.root, None, 'q.json') == semi_only
