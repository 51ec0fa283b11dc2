"""The main job of README.md: demo data -> training stages -> evaluation -> results.json.

Each stage trains through ``tools/train.py`` in a subprocess (the way users run it) and is
skipped when its final checkpoint already exists, so an interrupted ``make demo`` picks up
where it stopped. Stages run as a small dependency graph: a stage starts as soon as the
stage whose checkpoint it loads is done, with up to ``--jobs`` stages at a time (each with
``cpu_count // jobs`` threads: on a 2-core machine two 1-thread trainings side by side do
more work per minute than one 2-thread training). Evaluation uses mmengine's test loop with
``CocoMetric`` (bbox + segm), in its own process. Results are written to
``<work-dir>/results.json`` as ``{row: {"segm_mAP": .., "bbox_mAP": .., ...}}`` and a panel
of the S4M pseudo-labels (teacher, SAM-refined, ARP-mixed) to ``<work-dir>/pseudo_labels.png``;
both, with the last seed ablation, go into ``<work-dir>/report.html``.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from mmssis.apis import StageRunner  # noqa: E402

DEMO = 'configs/demo/'
REFINE = DEMO + 's4m-refine_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'
# Each stage: a name (its work dir), its config, the stage whose final checkpoint it loads
# (stage 2 teachers come from stage 1), other stages it waits for, and the results row it
# produces (None: no row). Listed in start order, chosen for the critical path (SAM cache,
# then full S4M): with 2 jobs the SAM embedding cache and stage 1 start together, S4M starts
# as soon as both are done, and `sup` then `semi` fill the other slot. The cache is filled
# once (the labelled images too: the S4M stage measures SAM's benefit on them), so the SAM
# stage-2 runs never run SAM's image encoder. A stage's evaluation does not hold its slot,
# and the panel and the pseudo-label scores of the S4M teacher (graph stages added by
# `report_stages`) start as soon as S4M is trained.
STAGES: List[Dict] = [
    dict(name='sam_cache', row=None,
         command=[sys.executable, 'tools/misc/cache_sam_embeddings.py', REFINE,
                  '--include-labelled']),
    dict(name='s4m_stage1', row='s4m_stage1',
         config=DEMO + 's4m-distill_mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py'),
    dict(name='sup', row='sup',
         config=DEMO + 'mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py'),
    dict(name='s4m', row='s4m', load_from='s4m_stage1', after=['sam_cache'],
         config=DEMO + 's4m_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'),
    dict(name='semi', row='semi', load_from='sup',
         config=DEMO + 'gd_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'),
    # Refinement alone (no ARP, no calibration): an ablation row, run with `--stages
    # s4m_refine` or `--all`; benchmarks/ablation.py reports it over 3 seeds.
    dict(name='s4m_refine', row='s4m_refine', load_from='s4m_stage1', after=['sam_cache'],
         config=REFINE, default=False),
]
# Each training stage is evaluated once after training (CocoMetric, in its own process), so
# the configs' own validation is skipped, the one at the last iteration included.
for _stage in STAGES:
    if 'config' in _stage:
        _stage['options'] = ['train_cfg.val_begin=1000000']
PANEL_STAGE = 's4m'
# Unlabelled images whose pseudo-labels are scored against their hidden GT (their SAM
# embeddings are in the cache already, so this costs the teacher and SAM's decoder only).
QUALITY_IMAGES = 60


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Run the mmssis demo end to end')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument('--stages', nargs='+', default=None,
                        help='only these stages (default: all); a stage also runs the '
                        'stage it loads its teacher from')
    parser.add_argument('--all', action='store_true',
                        help='also the ablation stages that are off by default (s4m_refine)')
    parser.add_argument('--jobs', type=int, default=min(2, os.cpu_count() or 1),
                        help='stages trained at the same time (default: min(2, CPUs))')
    parser.add_argument('--force', action='store_true', help='retrain even if done')
    parser.add_argument('--no-panel', action='store_true',
                        help='skip the pseudo-label panel PNG')
    return parser.parse_args()


def wanted_stages(names: Optional[List[str]], everything: bool = False) -> List[Dict]:
    """The stages to run, in order, with the stages they depend on.

    Args:
        names: Stage names (``None``: the default stages).
        everything: With ``names=None``, also the stages marked ``default=False``.
    """
    if not names:
        return [s for s in STAGES if everything or s.get('default', True)]
    by_name = {s['name']: s for s in STAGES}
    unknown = set(names) - set(by_name)
    if unknown:
        raise SystemExit(f'unknown stage(s) {sorted(unknown)}; known: {list(by_name)}')
    need, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in need:
            need.add(name)
            todo += StageRunner.dependencies(by_name[name])
    return [s for s in STAGES if s['name'] in need]


def panel_command(work_dir: str, out: str, num: int = 4) -> List[str]:
    """Teacher / SAM-refined / ARP-mixed pseudo-labels of ``num`` unlabelled images."""
    stage = next(s for s in STAGES if s['name'] == PANEL_STAGE)
    ckpt = osp.join(work_dir, PANEL_STAGE, 'final.pth')
    return [sys.executable, osp.join(REPO, 'tools', 'analysis_tools', 'browse_pseudo_labels.py'),
            stage['config'], ckpt, '--out-dir', osp.join(work_dir, 'pseudo_labels'), '--num',
            str(num), '--sam', '--panel', out, '--device', 'cpu']


def quality_command(work_dir: str, data_root: str, out: str,
                    num: int = QUALITY_IMAGES) -> List[str]:
    """Pseudo-label quality of the S4M stage's final teacher, before and after its SAM, on
    ``num`` unlabelled images against their hidden GT (``pseudo_label_quality.py``)."""
    stage = next(s for s in STAGES if s['name'] == PANEL_STAGE)
    from mmssis.demo.data import write_unlabelled_gt
    gt = write_unlabelled_gt(data_root, osp.join(work_dir, 'unlabelled_gt.json'))
    return [sys.executable, osp.join(REPO, 'tools', 'analysis_tools', 'pseudo_label_quality.py'),
            stage['config'], osp.join(work_dir, PANEL_STAGE, 'final.pth'), '--ann-file', gt,
            '--img-dir', osp.join(data_root, 'images') + '/', '--max-images', str(num),
            '--sam', 'config', '--device', 'cpu', '--out', out]


def report_stages(stages: List[Dict], work_dir: str, data_root: str, panel: Optional[str],
                  quality: str) -> List[Dict]:
    """``stages`` plus the panel (unless ``panel`` is None) and the pseudo-label scores of
    the S4M teacher, as command stages after :data:`PANEL_STAGE` (when it is among them)."""
    if not any(s['name'] == PANEL_STAGE for s in stages):
        return stages
    extra = [dict(name='quality', row=None, after=[PANEL_STAGE],
                  command=quality_command(work_dir, data_root, quality))]
    if panel is not None:
        extra.append(dict(name='panel', row=None, after=[PANEL_STAGE],
                          command=panel_command(work_dir, panel)))
    return stages + extra


def main() -> None:
    args = parse_args()
    os.chdir(REPO)
    os.environ.setdefault('MMSSIS_DEMO_ROOT', args.data_root.rstrip('/') + '/')
    os.makedirs(args.work_dir, exist_ok=True)
    # The demo SAM configs share an on-disk embedding cache here (see their comments).
    os.environ.setdefault('MMSSIS_SAM_CACHE', osp.join(args.work_dir, 'sam_embeddings'))
    t0 = time.time()

    t = time.time()
    subprocess.run([sys.executable, 'tools/misc/generate_demo_data.py', '--out', args.data_root],
                   cwd=REPO, check=True)
    timings = {'data': time.time() - t}

    results_file = osp.join(args.work_dir, 'results.json')
    results = {}
    if osp.isfile(results_file):
        with open(results_file) as f:
            results = json.load(f)
    panel = osp.join(args.work_dir, 'pseudo_labels.png')
    quality_file = osp.join(args.work_dir, 'pseudo_label_quality.json')
    stages = report_stages(wanted_stages(args.stages, args.all), args.work_dir,
                           args.data_root, None if args.no_panel else panel, quality_file)
    from mmssis.demo.report import machine_description
    machine = machine_description()
    runner = StageRunner(stages, args.work_dir, args.jobs, args.force)
    try:
        runner.run()
    except RuntimeError as e:
        raise SystemExit(f'demo: {e}')
    finally:
        for stage in runner.stages:
            m = runner.metrics.get(stage['name']) if stage.get('row') else None
            if m is None:
                continue
            results[stage['row']] = {
                'segm_mAP': m['coco/segm_mAP'],
                'bbox_mAP': m['coco/bbox_mAP'],
                'segm_mAP_50': m['coco/segm_mAP_50'],
                'config': stage['config'],
                # rows can come from earlier runs: each names the machine it was measured on
                'machine': machine,
            }
        results = in_stage_order(results)
        with open(results_file, 'w') as f:
            json.dump(results, f, indent=2)
    timings.update(runner.timings)

    ran = {s['name'] for s in runner.stages}
    if 'panel' in ran:
        print(f'pseudo-label panel (teacher | SAM-refined | ARP-mixed student): {panel}')
    quality = None
    if 'quality' in ran:  # the stage succeeded (runner.run raised otherwise): its file is there
        with open(quality_file) as f:
            quality = json.load(f)

    print('\n== demo results (val set, COCO mAP)')
    sup = results.get('sup', {}).get('segm_mAP')
    print(f'{"row":<14}{"segm_mAP":>10}{"bbox_mAP":>10}{"segm/sup":>10}')
    for row, r in results.items():
        ratio = f'{r["segm_mAP"] / sup:>10.2f}' if sup else f'{"-":>10}'
        print(f'{row:<14}{r["segm_mAP"]:>10.3f}{r["bbox_mAP"]:>10.3f}{ratio}')
    ablation_json = this_kinds_ablation()
    ablation = osp.splitext(ablation_json)[0] + '.md'
    print('\nOne seed (the configs as they are). Rows differ by a few points from seed to seed '
          f'and between CPU kinds: {osp.relpath(ablation, REPO)} gives every row as mean ± '
          'spread over seeds (python benchmarks/ablation.py --seeds 0 1 2 '
          '--seed0-dir ' + args.work_dir + '; its machine line says which CPU kind).')
    print(f'\nwritten {results_file}; timings (s): ' +
          ', '.join(f'{k}={v:.0f}' for k, v in timings.items()) +
          f'; total {time.time() - t0:.0f}s')
    if quality is not None:
        from mmssis.demo.report import QUALITY_COLUMNS, quality_table
        print(f'\n== pseudo-labels of {QUALITY_IMAGES} unlabelled images vs their hidden GT '
              f'({quality_file})')
        print(f'{"stage":<13}' + ''.join(f'{c:>11}' for c, _ in QUALITY_COLUMNS))
        for row in quality_table(quality['metrics']):
            print(f'{row[0]:<13}' + ''.join(f'{c:>11}' for c in row[1:]))
    report = write_demo_report(args.work_dir, results,
                               panel if osp.isfile(panel) and not args.no_panel else None,
                               quality, ablation_json, machine)
    print(f'\nreport (open it in a browser): {report}')


# Rows as the story goes (stages finish in any order): baseline, its distilled twin,
# semi-supervised without SAM, then the S4M rows.
ROW_ORDER = ('sup', 's4m_stage1', 'semi', 's4m_refine', 's4m')


def in_stage_order(results: Dict) -> Dict:
    """``results`` rows in :data:`ROW_ORDER`, rows it does not name last."""
    order = [row for row in ROW_ORDER if row in results]
    return {**{row: results[row] for row in order}, **results}


def this_kinds_ablation() -> str:
    """The shipped seed ablation of this machine's CPU kind (else the default one).

    Raises:
        FileNotFoundError: No ``benchmarks/results/ablation*.json`` is shipped.
    """
    import torch

    from mmssis.demo.report import pick_ablation
    folder = osp.join(REPO, 'benchmarks', 'results')
    path = pick_ablation(folder, torch.backends.cpu.get_cpu_capability())
    if path is None:
        raise FileNotFoundError(f'demo report: no seed ablation in {folder} (ablation.json: '
                                'run benchmarks/ablation.py)')
    return path


def write_demo_report(work_dir: str, results: Dict, panel: Optional[str],
                      quality: Optional[Dict] = None, path: Optional[str] = None,
                      machine: Optional[str] = None) -> str:
    """``<work_dir>/report.html``: this run's rows, the last ablation's seeds, the panel.

    ``path`` (the ablation json) and ``machine`` default to :func:`this_kinds_ablation`
    and :func:`machine_description`."""
    from mmssis.demo.report import machine_description, write_report
    path = path or this_kinds_ablation()
    with open(path) as f:
        ablation = json.load(f)
    where = ablation.get('machine', 'machine not recorded')
    notes = ['One seed: the configs as they are. The red marks are the last seed ablation '
             f'on this CPU kind if there is one ({osp.relpath(path, REPO)}: {where}; its own '
             'commit): rows differ by a few points from seed to seed and between CPU kinds.']
    return write_report(osp.join(work_dir, 'report.html'), results, ablation, panel,
                        machine or machine_description(), notes, quality)


if __name__ == '__main__':
    main()
