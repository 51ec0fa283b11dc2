"""The main job of README.md: demo data -> training stages -> evaluation -> results.json.

Each stage trains through ``tools/train.py`` in a subprocess (the way users run it) and is
skipped when its final checkpoint already exists, so an interrupted ``make demo`` picks up
where it stopped. Evaluation uses mmengine's test loop with ``CocoMetric`` (bbox + segm).
Results are written to ``<work-dir>/results.json`` as ``{row: {"segm_mAP": .., "bbox_mAP": ..}}``.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from mmssis.apis import evaluate_checkpoint, train_stage  # noqa: E402

DEMO = 'configs/demo/'
# Each stage: a name (its work dir), its config, the stage whose final checkpoint it loads
# (stage 2 teachers come from stage 1) and the results row it produces (None: no row).
STAGES: List[Dict] = [
    dict(name='sup', row='sup',
         config=DEMO + 'mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py'),
    dict(name='semi', row='semi', load_from='sup',
         config=DEMO + 'semi_mask-rcnn_effnetlite0_fpn_300it_semi-0.08-demo.py'),
    dict(name='s4m_stage1', row=None,
         config=DEMO + 's4m-distill_mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py'),
    dict(name='s4m_refine', row='s4m_refine', load_from='s4m_stage1',
         config=DEMO + 's4m-refine_mask-rcnn_effnetlite0_fpn_300it_semi-0.08-demo.py'),
    dict(name='s4m', row='s4m', load_from='s4m_stage1',
         config=DEMO + 's4m_mask-rcnn_effnetlite0_fpn_300it_semi-0.08-demo.py'),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Run the mmssis demo end to end')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument('--stages', nargs='+', default=None,
                        help='only these stages (default: all); a stage also runs the '
                        'stage it loads its teacher from')
    parser.add_argument('--force', action='store_true', help='retrain even if done')
    return parser.parse_args()


def wanted_stages(names: Optional[List[str]]) -> List[Dict]:
    """The stages to run, in order, with the stages they depend on."""
    if not names:
        return list(STAGES)
    by_name = {s['name']: s for s in STAGES}
    unknown = set(names) - set(by_name)
    if unknown:
        raise SystemExit(f'unknown stage(s) {sorted(unknown)}; known: {list(by_name)}')
    need = set()
    for name in names:
        while name:
            need.add(name)
            name = by_name[name].get('load_from')
    return [s for s in STAGES if s['name'] in need]


def main() -> None:
    args = parse_args()
    os.chdir(REPO)
    os.environ.setdefault('MMSSIS_DEMO_ROOT', args.data_root.rstrip('/') + '/')
    os.makedirs(args.work_dir, exist_ok=True)
    t0 = time.time()
    timings: Dict[str, float] = {}

    t = time.time()
    subprocess.run([sys.executable, 'tools/misc/generate_demo_data.py', '--out', args.data_root],
                   cwd=REPO, check=True)
    timings['data'] = time.time() - t

    results_file = osp.join(args.work_dir, 'results.json')
    results = {}
    if osp.isfile(results_file):
        with open(results_file) as f:
            results = json.load(f)
    for stage in wanted_stages(args.stages):
        name, row = stage['name'], stage['row']
        stage_dir = osp.join(args.work_dir, name)
        teacher = osp.join(args.work_dir, stage['load_from'], 'final.pth') \
            if stage.get('load_from') else None
        t = time.time()
        print(f'== stage {name}: {stage["config"]}', flush=True)
        ckpt = train_stage(stage['config'], stage_dir, load_from=teacher, force=args.force)
        timings[f'train_{name}'] = time.time() - t
        if row is None:
            continue
        t = time.time()
        print(f'== evaluating {row}', flush=True)
        metrics = evaluate_checkpoint(stage['config'], ckpt, osp.join(stage_dir, 'eval'))
        timings[f'eval_{row}'] = time.time() - t
        results[row] = {
            'segm_mAP': float(metrics['coco/segm_mAP']),
            'bbox_mAP': float(metrics['coco/bbox_mAP']),
            'segm_mAP_50': float(metrics['coco/segm_mAP_50']),
            'config': stage['config'],
        }
        with open(results_file, 'w') as f:
            json.dump(results, f, indent=2)

    print('\n== demo results (val set, COCO mAP)')
    print(f'{"row":<14}{"segm_mAP":>10}{"bbox_mAP":>10}')
    for row, r in results.items():
        print(f'{row:<14}{r["segm_mAP"]:>10.3f}{r["bbox_mAP"]:>10.3f}')
    print(f'\nwritten {results_file}; timings (s): ' +
          ', '.join(f'{k}={v:.0f}' for k, v in timings.items()) +
          f'; total {time.time() - t0:.0f}s')


if __name__ == '__main__':
    main()
