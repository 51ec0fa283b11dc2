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
    assert names == ['s4m_stage1', 'sam_cache', 's4m']
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
