"""S4M ablation on the demo data: supervised -> semi -> + refinement -> + ARP ->
+ distillation -> + calibration -> + measured refinement, over several seeds, as a markdown
table of segm AP.

Rows are cumulative, except the last: ``no refinement`` is the full config with SAM
refinement off (``policy='never'``), the baseline of the two refinement policies (``+
calibration`` refines every pseudo-mask, S4M's rule; ``+ measured refinement``, the demo
config, only the classes where SAM is measured to help). Stage-1 teachers (plain and SAM-distilled) are trained once per seed
and shared by the stage-2 rows. Every run is an ordinary ``tools/train.py`` run, scheduled
by :class:`mmssis.apis.StageRunner` (``--jobs`` at a time, a stage starts when its teacher is
done); finished runs are skipped, so the script can be re-run to resume. Seed 0 uses the
configs unchanged, so its runs are the ``make demo`` runs: ``--seed0-dir work_dirs/demo``
reuses them (``sup``, ``semi``, ``s4m_stage1``, ``s4m``, the measured row). Figures go to
``benchmarks/results/ablation.{md,json}``.

Usage:
    python benchmarks/ablation.py --seeds 0 1 [--seed0-dir work_dirs/demo] [--jobs 2]
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time
from typing import Dict, List

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from mmssis.apis import StageRunner  # noqa: E402
from mmssis.demo.report import machine_description  # noqa: E402
from mmssis.utils.machine import cpu_info  # noqa: E402

D = 'configs/demo/'
SUP = D + 'mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py'
DISTILL = D + 's4m-distill_mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py'
SEMI = D + 'gd_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'
REFINE = D + 's4m-refine_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'
ARP = D + 's4m-arp_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'
S4M_ALWAYS = D + 's4m-sam-always_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'
S4M_NEVER = D + 's4m-sam-never_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'
S4M = D + 's4m_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'
# (table row, stage name, config, teacher stage). Stage names match tools/misc/run_demo.py
# where the run is the same.
ROWS = [
    ('supervised', 'sup', SUP, None),
    ('semi', 'semi', SEMI, 'sup'),
    ('+ refinement', 'refine_plain', REFINE, 'sup'),
    ('+ ARP', 'arp_plain', ARP, 'sup'),
    ('+ distillation', 'arp_distill', ARP, 's4m_stage1'),
    ('+ calibration', 's4m_always', S4M_ALWAYS, 's4m_stage1'),
    ('+ measured refinement', 's4m', S4M, 's4m_stage1'),
    ('no refinement', 's4m_never', S4M_NEVER, 's4m_stage1'),
]


def seed_stages(seed: int, root: str, rows: List[str] = None) -> List[Dict]:
    """The stage graph of one seed, in ``root`` (seed 0: the configs as they are).

    Stage names carry the seed (``sup@seed1``) so that all seeds form one graph. ``rows``
    (table row names, default all) limits the graph to those rows and their teachers.
    """
    wanted = [r for r in ROWS if rows is None or r[0] in rows]
    # no validation in training (the last iteration's included): StageRunner evaluates
    # each row once afterwards
    options = ['train_cfg.val_begin=1000000'] + (
        [] if seed == 0 else [f'randomness.seed={seed}'])

    def stage(name, **kw):
        if kw.get('load_from'):
            kw['load_from'] = f"{kw['load_from']}@seed{seed}"
        after = [f'{a}@seed{seed}' for a in kw.pop('after', [])]
        return dict(name=f'{name}@seed{seed}', dir=osp.join(root, name), after=after,
                    options=options, **kw)

    teachers = {t for *_, t in wanted if t}
    stages = []
    if 's4m_stage1' in teachers:
        stages.append(stage('s4m_stage1', config=DISTILL, row=None))
    if 'sup' in teachers or any(name == 'sup' for _, name, *_ in wanted):
        stages.append(stage('sup', config=SUP, row='supervised'))
    sam_rows = [name for _, name, cfg, _ in wanted if cfg not in (SUP, SEMI)]
    if sam_rows:
        # SAM embeddings of the unlabelled images, once for all SAM rows (shared on-disk
        # cache, MMSSIS_SAM_CACHE)
        stages.append(dict(name=f'sam_cache@seed{seed}', dir=osp.join(root, 'sam_cache'),
                           row=None, command=[sys.executable,
                                              'tools/misc/cache_sam_embeddings.py', REFINE,
                                              '--include-labelled']))
    stages += [stage(name, config=cfg, row=row, load_from=teacher,
                     after=['sam_cache'] if name in sam_rows else [])
               for row, name, cfg, teacher in wanted if name != 'sup']
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--jobs', type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument('--rows', nargs='+', default=None,
                        help='only these table rows (default: all), e.g. supervised semi '
                        '"+ calibration"')
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'ablation'))
    parser.add_argument('--seed0-dir', default=None,
                        help='work dir of seed 0 (e.g. work_dirs/demo to reuse make demo)')
    parser.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results', 'ablation'))
    args = parser.parse_args()
    os.chdir(REPO)
    os.environ.setdefault('MMSSIS_DEMO_ROOT', osp.join(REPO, 'data', 'demo') + '/')
    os.environ.setdefault('MMSSIS_SAM_CACHE',
                          osp.join(args.seed0_dir or args.work_dir, 'sam_embeddings'))
    t0 = time.time()
    rows = [r for r in ROWS if args.rows is None or r[0] in args.rows]
    if args.rows is not None and len(rows) != len(args.rows):
        raise SystemExit(f'unknown row(s) in {args.rows}; rows: {[r[0] for r in ROWS]}')
    if not any(r[0] == 'supervised' for r in rows):
        rows.insert(0, ROWS[0])  # the ratio column needs it
    names = [r[0] for r in rows]
    aps: Dict[str, List[float]] = {row: [] for row in names}
    stages = []
    for seed in args.seeds:
        root = args.seed0_dir if seed == 0 and args.seed0_dir else \
            osp.join(args.work_dir, f'seed{seed}')
        stages += seed_stages(seed, root, names)
    # All seeds in one graph, teachers (and the SAM cache) first: a slot never waits for
    # another seed's last stage.
    stages.sort(key=lambda s: 'load_from' in s)
    runner = StageRunner(stages, args.work_dir, jobs=args.jobs)
    runner.run()
    for seed in args.seeds:
        for row, name, *_ in rows:
            aps[row].append(float(runner.metrics[f'{name}@seed{seed}']['coco/segm_mAP']))
            print(f'seed {seed} {row:<16} segm AP {aps[row][-1]:.3f}', flush=True)
    sup = statistics.mean(aps['supervised'])
    from mmengine.config import Config
    iters = [Config.fromfile(c).train_cfg.max_iters for c in (SUP, SEMI)]
    lines = [f'# S4M ablation on the demo (segm AP on the 60 val images; stage 1: {iters[0]} '
             f'iterations, stage 2: {iters[1]}; seeds {args.seeds})', '',
             '| row | segm AP (mean ± spread) | / supervised | per seed |',
             '| --- | --- | --- | --- |']
    for row, *_ in rows:
        v = aps[row]
        spread = (max(v) - min(v)) / 2 if len(v) > 1 else 0.0
        lines.append(f'| {row} | {statistics.mean(v):.3f} ± {spread:.3f} | '
                     f'{statistics.mean(v) / sup:.2f} | ' + ', '.join(f'{x:.3f}' for x in v)
                     + ' |')
    lines += ['', 'Rows are cumulative (each adds one part to the row above; a subset of the '
              'rows may have run, then a row adds all parts between it and the row above): '
              '"+ calibration" is the full S4M demo config with S4M\'s refinement (SAM refines '
              'every pseudo-mask), "+ measured refinement" the demo config (SAM refines only '
              'the classes where it is measured to help on the calibration slice), "no '
              'refinement" the full config without SAM refinement. Spread = half the max-min '
              'range over seeds.',
              f'Machine: {machine_description()}; '
              f'{args.jobs} stage(s) at a time; wall time {time.time() - t0:.0f} s '
              '(runs found finished were not re-run).']
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out + '.md', 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with open(args.out + '.json', 'w') as f:
        # configs: what the demo report matches its rows by (mmssis.demo.report)
        # cpu: what the demo report picks this CPU kind's ablation by
        json.dump(dict(seeds=args.seeds, segm_ap=aps,
                       configs={row: cfg for row, _, cfg, _ in rows},
                       machine=machine_description(), cpu=cpu_info()), f, indent=2)
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
