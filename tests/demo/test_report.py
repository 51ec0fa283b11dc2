"""mmssis.demo.report: the page `make demo` ends with."""
import base64
import json
import os.path as osp
import re

import mmcv
import numpy as np
import pytest

from mmssis.demo.report import (ablation_by_config, machine_description, pick_ablation,
                                report_rows, seed_spread, write_report)
from mmssis.testing.tools import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SUP, SEMI, S4M = 'configs/demo/sup.py', 'configs/demo/semi.py', 'configs/demo/s4m.py'
RESULTS = {'sup': dict(segm_mAP=0.4, bbox_mAP=0.5, config=SUP),
           'semi': dict(segm_mAP=0.5, bbox_mAP=0.55, config=SEMI),
           's4m': dict(segm_mAP=0.6, bbox_mAP=0.6, config=S4M)}
ABLATION = dict(seeds=[0, 1, 2],
                segm_ap={'supervised': [0.40, 0.38, 0.44], 'full': [0.58, 0.62, 0.60]},
                configs={'supervised': SUP, 'full': S4M})


def test_seed_spread_is_half_the_range():
    assert seed_spread([0.40, 0.38, 0.44]) == pytest.approx(
        dict(mean=0.40666667, spread=0.03, n=3))
    assert seed_spread([0.5])['spread'] == 0.0


def test_rows_are_matched_to_the_ablation_by_config():
    rows = report_rows(RESULTS, ABLATION)
    assert [r['row'] for r in rows] == ['sup', 'semi', 's4m']
    assert [r['ratio'] for r in rows] == pytest.approx([1.0, 1.25, 1.5])
    assert rows[0]['seeds']['row'] == 'supervised' and rows[1]['seeds'] is None
    assert rows[2]['seeds']['values'] == [0.58, 0.62, 0.60]
    with pytest.raises(ValueError, match='no "configs"'):
        ablation_by_config(dict(segm_ap={'supervised': [0.4]}))


def _bars(page):
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r'<rect class="run" data-row="([^"]+)" x="[0-9.]+" y="[0-9.]+" width="[0-9.]+" '
        r'height="([0-9.]+)"', page)}


def test_report_has_bars_spreads_table_and_the_panel(tmp_path):
    panel = str(tmp_path / 'panel.png')
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, :15] = 255
    mmcv.imwrite(img, panel)
    path = write_report(str(tmp_path / 'out' / 'report.html'), RESULTS, ABLATION, panel,
                        machine='Test CPU (AVX2)', notes=['one seed'])
    page = open(path, encoding='utf-8').read()
    bars = _bars(page)
    # bar heights are proportional to the row's segm mAP
    assert bars['semi'] / bars['sup'] == pytest.approx(1.25, abs=0.01)
    assert bars['s4m'] / bars['sup'] == pytest.approx(1.5, abs=0.01)
    # seed dots and whiskers only for the two rows the ablation ran
    assert page.count('class="seed"') == 6 and page.count('class="spread"') == 2
    assert '0.407 ± 0.030' in page and 'not in the last ablation' in page
    assert 'Test CPU (AVX2)' in page and '<p>one seed</p>' in page
    data = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(data) == open(panel, 'rb').read()


def test_missing_panel_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.png'):
        write_report(str(tmp_path / 'r.html'), RESULTS, None, str(tmp_path / 'nope.png'))


def test_machine_line_names_the_cpu_and_the_kernels():
    import torch
    line = machine_description()
    assert torch.backends.cpu.get_cpu_capability() in line and 'cores' in line


def test_run_demo_report_uses_the_shipped_ablation(tmp_path):
    """The report `make demo` writes: the shipped ablation.json matches the demo's rows."""
    run_demo = load_tool('misc/run_demo.py')
    results = {s['row']: dict(segm_mAP=0.5, bbox_mAP=0.5, config=s['config'])
               for s in run_demo.STAGES if s.get('row') and s.get('default', True)}
    path = run_demo.write_demo_report(str(tmp_path), results, None)
    page = open(path, encoding='utf-8').read()
    with open(osp.join(REPO, 'benchmarks', 'results', 'ablation.json')) as f:
        shipped = json.load(f)
    matched = {r['row'] for r in report_rows(results, shipped) if r['seeds']}
    assert {'sup', 's4m'} <= matched  # supervised and the full demo config
    assert page.count('class="spread"') == len(matched)


def test_report_shows_the_pseudo_label_quality_per_stage(tmp_path):
    from mmssis.demo.report import quality_table
    metrics = {f'{s}_{k}': v for s, vals in (('teacher', (0.87, 0.6, 0.84, 0.74, 110, 96, 161)),
                                             ('refined', (0.85, 0.58, 0.92, 0.80, 110, 94, 161)))
               for k, v in zip(('precision', 'recall', 'miou', 'best_iou', 'num_pred', 'num_tp',
                                'num_gt'), vals)}
    metrics['teacher_num_images'] = 40
    rows = quality_table(metrics)
    assert rows == [['teacher', '0.870', '0.600', '0.840', '0.740', '110', '96', '161'],
                    ['SAM-refined', '0.850', '0.580', '0.920', '0.800', '110', '94', '161']]
    assert quality_table({k: v for k, v in metrics.items() if k.startswith('teacher')}) == rows[:1]
    quality = dict(metrics=metrics, args=dict(checkpoint='w/s4m/final.pth', iou_thr=0.5))
    page = open(write_report(str(tmp_path / 'r.html'), RESULTS, quality=quality),
                encoding='utf-8').read()
    assert 'Pseudo-label quality on the unlabelled images' in page
    assert '<td>SAM-refined</td><td>0.850</td>' in page and '40 unlabelled images' in page
    assert 'w/s4m/final.pth' in page


def test_report_picks_the_ablation_of_this_cpu_kind(tmp_path):
    """Demo numbers are per CPU kind: the report compares with that kind's ablation, and
    falls back to ablation.json (then to nothing) when no file names this kind."""
    def write(name, kernels=None):
        d = dict(ABLATION, **(dict(cpu=dict(torch_kernels=kernels)) if kernels else {}))
        (tmp_path / name).write_text(json.dumps(d))
    assert pick_ablation(str(tmp_path), 'AVX2') is None
    write('ablation.json', 'AVX512')
    write('ablation_amd.json', 'AVX2')
    write('ablation_old.json')
    assert pick_ablation(str(tmp_path), 'AVX2') == str(tmp_path / 'ablation_amd.json')
    assert pick_ablation(str(tmp_path), 'AVX512') == str(tmp_path / 'ablation.json')
    assert pick_ablation(str(tmp_path), 'DEFAULT') == str(tmp_path / 'ablation.json')


def test_shipped_ablations_name_their_cpu_kind():
    """Every shipped ablation says which CPU kind measured it (what the report picks by)."""
    import glob
    files = glob.glob(osp.join(REPO, 'benchmarks', 'results', 'ablation*.json'))
    assert files
    kinds = [json.load(open(f))['cpu']['torch_kernels'] for f in files]
    assert len(set(kinds)) == len(kinds)
