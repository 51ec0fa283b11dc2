"""Pseudo-label quality of the demo's stage-2 teachers on the unlabelled images, per seed.

For each seed's run directory (``make demo``'s ``work_dirs/demo`` for seed 0,
``benchmarks/ablation.py``'s ``<work-dir>/seed<N>`` for the others) the final teachers of
``semi`` (no SAM) and ``s4m`` label ``--num`` unlabelled images; their pseudo-labels are scored
against the ground truth the training never saw (``mmssis.demo.data.write_unlabelled_gt``) by
``tools/analysis_tools/pseudo_label_quality.py``: the teacher's, then after the ``s4m``
config's SAM refinement (every pseudo-mask refined, whatever the config's policy). Writes
``benchmarks/results/pseudo_label_quality_demo.{md,json}`` with mean ± spread over seeds.

Usage:
    python benchmarks/pseudo_label_quality_demo.py --runs 0=work_dirs/demo \\
        1=work_dirs/ablation/seed1 2=work_dirs/ablation/seed2
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from mmssis.apis import stage_env  # noqa: E402
from mmssis.demo.report import (QUALITY_COLUMNS, QUALITY_STAGES, machine_description,
                                seed_spread)  # noqa: E402

D = 'configs/demo/'
# (row, stage directory, config, --sam)
TEACHERS = [
    ('semi', 'semi', D + 'gd_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py', 'none'),
    ('s4m', 's4m', D + 's4m_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py', 'config'),
]


def score(config: str, ckpt: str, sam: str, gt: str, img_dir: str, num: int, out: str) -> Dict:
    """``pseudo_label_quality.py`` on ``num`` images of ``gt``; returns its ``metrics``."""
    if not osp.isfile(out):
        subprocess.run([sys.executable, 'tools/analysis_tools/pseudo_label_quality.py', config,
                        ckpt, '--ann-file', gt, '--img-dir', img_dir, '--max-images', str(num),
                        '--sam', sam, '--device', 'cpu', '--out', out],
                       cwd=REPO, env=stage_env(), check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)['metrics']


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', nargs='+', required=True, help='SEED=RUN_DIR ...')
    parser.add_argument('--data-root', default=osp.join(REPO, 'data', 'demo'))
    parser.add_argument('--num', type=int, default=60, help='unlabelled images scored')
    parser.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results',
                                                  'pseudo_label_quality_demo'))
    args = parser.parse_args()
    from mmssis.demo.data import write_unlabelled_gt
    os.environ.setdefault('MMSSIS_DEMO_ROOT', args.data_root.rstrip('/') + '/')
    runs = dict(r.split('=', 1) for r in args.runs)
    per_seed: Dict[str, Dict[str, Dict]] = {}
    for seed, run_dir in sorted(runs.items()):
        gt = write_unlabelled_gt(args.data_root, osp.join(run_dir, 'unlabelled_gt.json'))
        per_seed[seed] = {}
        for row, stage, config, sam in TEACHERS:
            ckpt = osp.join(run_dir, stage, 'final.pth')
            out = osp.join(run_dir, f'pseudo_label_quality_{row}.json')
            per_seed[seed][row] = score(config, ckpt, sam, gt,
                                        osp.join(args.data_root, 'images') + '/', args.num, out)
    lines = ['# Pseudo-label quality of the demo teachers on unlabelled images', '',
             f'{args.num} unlabelled demo images against their hidden ground truth; final '
             'stage-2 teacher of each run (EMA of its student), score threshold 0.7 (the '
             "configs'; the calibrated per-class thresholds of `s4m` are not applied here), "
             "matching at mask IoU >= 0.5; `SAM-refined`: the `s4m` config's refiner on every "
             'kept pseudo-mask. Mean ± spread (half the range) over seeds '
             f'{", ".join(sorted(per_seed))}. Machine: {machine_description()}.', '',
             '| teacher | stage | ' + ' | '.join(h for _, h in QUALITY_COLUMNS) + ' |',
             '| --- | --- | ' + ' | '.join('---' for _ in QUALITY_COLUMNS) + ' |']
    summary: Dict[str, Dict[str, Dict]] = {}
    for row, *_ in TEACHERS:
        for key, name in QUALITY_STAGES:
            if f'{key}_precision' not in per_seed[next(iter(per_seed))][row]:
                continue
            cells: List[str] = []
            for col, _ in QUALITY_COLUMNS:
                s = seed_spread([m[row][f'{key}_{col}'] for m in per_seed.values()])
                summary.setdefault(row, {}).setdefault(key, {})[col] = s
                fmt = '{:.0f}' if col.startswith('num_') else '{:.3f}'
                cells.append(f'{fmt.format(s["mean"])} ± {fmt.format(s["spread"])}')
            lines.append(f'| `{row}` | {name} | ' + ' | '.join(cells) + ' |')
    lines += ['', 'Command: `python benchmarks/pseudo_label_quality_demo.py --runs '
              + ' '.join(f'{k}={v}' for k, v in sorted(runs.items())) + '`']
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out + '.md', 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with open(args.out + '.json', 'w') as f:
        json.dump(dict(per_seed=per_seed, summary=summary, num_images=args.num,
                       machine=machine_description()), f, indent=2)
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
