"""S4M ablation on the demo data: supervised -> semi -> + refinement -> + ARP ->
+ distillation -> + calibration, over several seeds, as a markdown table of segm AP.

Rows are cumulative. Stage-1 teachers (plain and SAM-distilled) are trained once per seed
and shared by the stage-2 rows. Every run is an ordinary ``tools/train.py`` run (see
``mmssis.apis.train_stage``); finished runs are skipped, so the script can be re-run to
resume. Figures go to ``benchmarks/results/ablation.{md,json}``.

Usage:
    python benchmarks/ablation.py --seeds 0 1 [--iters 300] [--work-dir work_dirs/ablation]
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from mmssis.apis import evaluate_checkpoint, train_stage  # noqa: E402

D = 'configs/demo/'
STAGE1 = {
    'plain': D + 'mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py',
    'distill': D + 's4m-distill_mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py',
}
# (row, stage-2 config or None for the stage-1 model itself, teacher kind)
ROWS = [
    ('supervised', None, 'plain'),
    ('semi', D + 'semi_mask-rcnn_effnetlite0_fpn_300it_semi-0.08-demo.py', 'plain'),
    ('+ refinement', D + 's4m-refine_mask-rcnn_effnetlite0_fpn_300it_semi-0.08-demo.py', 'plain'),
    ('+ ARP', D + 's4m-arp_mask-rcnn_effnetlite0_fpn_300it_semi-0.08-demo.py', 'plain'),
    ('+ distillation', D + 's4m-arp_mask-rcnn_effnetlite0_fpn_300it_semi-0.08-demo.py',
     'distill'),
    ('+ calibration', D + 's4m_mask-rcnn_effnetlite0_fpn_300it_semi-0.08-demo.py', 'distill'),
]


def slug(row: str) -> str:
    return row.replace('+ ', '').replace(' ', '_')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'ablation'))
    parser.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results', 'ablation'))
    args = parser.parse_args()
    os.environ.setdefault('MMSSIS_DEMO_ROOT', osp.join(REPO, 'data', 'demo') + '/')
    t0 = time.time()
    aps = {row: [] for row, _, _ in ROWS}
    for seed in args.seeds:
        common = [f'randomness.seed={seed}', f'train_cfg.max_iters={args.iters}',
                  f'train_cfg.val_interval={args.iters}']
        teachers = {
            kind: train_stage(cfg, osp.join(args.work_dir, f'seed{seed}', f'stage1_{kind}'),
                              options=common)
            for kind, cfg in STAGE1.items()
        }
        for row, cfg, kind in ROWS:
            if cfg is None:
                cfg, ckpt = STAGE1[kind], teachers[kind]
            else:
                ckpt = train_stage(cfg, osp.join(args.work_dir, f'seed{seed}', slug(row)),
                                   load_from=teachers[kind], options=common)
            metrics = evaluate_checkpoint(
                cfg, ckpt, osp.join(args.work_dir, f'seed{seed}', slug(row), 'eval'))
            aps[row].append(float(metrics['coco/segm_mAP']))
            print(f'seed {seed} {row:<16} segm AP {aps[row][-1]:.3f}', flush=True)
    lines = [f'# S4M ablation on the demo (segm AP on val, {args.iters} iterations per stage, '
             f'seeds {args.seeds})', '', '| row | segm AP (mean ± spread) | per seed |',
             '| --- | --- | --- |']
    for row, _, _ in ROWS:
        v = aps[row]
        spread = (max(v) - min(v)) / 2 if len(v) > 1 else 0.0
        lines.append(f'| {row} | {statistics.mean(v):.3f} ± {spread:.3f} | '
                     + ', '.join(f'{x:.3f}' for x in v) + ' |')
    lines += ['', f'Spread = half the max-min range over seeds. Wall time {time.time() - t0:.0f} s '
              f'on {os.cpu_count()} CPU cores.']
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out + '.md', 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with open(args.out + '.json', 'w') as f:
        json.dump(dict(seeds=args.seeds, iters=args.iters, segm_ap=aps), f, indent=2)
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
