"""Time per stage-2 training step, side by side in one run, on the demo data.

Variants (each in its own subprocess, so peak memory is per variant):

* ``mmdet_semi``   mmdet's own ``SemiBaseDetector`` step on the same Mask R-CNN. mmdet's
  semi detector does not carry masks into the student view; the only addition here is
  handing its unprojected pseudo-masks to the student as ``BitmapMasks`` so Mask R-CNN's
  mask loss can run (the geometry is shared between the views in the demo pipeline).
* ``no_sam``       mmssis ``SemiMaskDetector`` (soft pseudo-masks, filtering, projection).
* ``sam``          + online SAM refinement, no cache (every step encodes its images).
* ``sam_cache``    + online SAM refinement with the embedding cache, steady state (the
  measured batches were seen once before, as after the first epoch).
* ``sam_cache_bf16`` the same with SAM's prompt encoder + mask decoder under bfloat16
  autocast (``decoder_dtype='bfloat16'`` of the backend).
* ``offline``      training on offline-refined pseudo-labels: a plain supervised step on
  the same number of images (labelled + refined-as-labelled).

The same K batches are used by every variant; the first pass over them is warm-up.
Figures (mean seconds per step, ratio to ``no_sam`` and to ``mmdet_semi``, peak RSS) go
to ``benchmarks/results/step_time.{md,json}`` with the machine noted.
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
SEMI = 'configs/demo/gd_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'
REFINE = 'configs/demo/s4m-refine_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'
SUP = 'configs/demo/mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py'
VARIANTS = ['mmdet_semi', 'no_sam', 'sam', 'sam_cache', 'sam_cache_bf16', 'offline']


def _build(variant, teacher_ckpt):
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner.checkpoint import load_checkpoint

    from mmssis.registry import MODELS
    from mmssis.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(REPO, REFINE if variant.startswith('sam') else SEMI))
    if variant == 'sam':
        cfg.model.semi_train_cfg.sam_refiner.cache = None
    if variant == 'sam_cache_bf16':
        cfg.model.semi_train_cfg.sam_refiner.backend.decoder_dtype = 'bfloat16'
    if variant == 'mmdet_semi':
        cfg.model.type = 'mmdet.SemiBaseDetector'
        cfg.model.semi_train_cfg = dict(freeze_teacher=True, sup_weight=1.0, unsup_weight=2.0,
                                        cls_pseudo_thr=0.7, min_pseudo_bbox_wh=(1e-2, 1e-2))
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    with DefaultScope.overwrite_default_scope('mmssis'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    if teacher_ckpt:
        load_checkpoint(model, teacher_ckpt, map_location='cpu', logger='silent')
    torch.manual_seed(0)
    return cfg, model


def _mmdet_masks_as_bitmaps(model):
    """Let mmdet's SemiBaseDetector feed its pseudo-masks to Mask R-CNN (see module doc)."""
    from mmdet.structures.mask import BitmapMasks
    orig = model.project_pseudo_instances

    def project(pseudo, samples):
        out = orig(pseudo, samples)
        for s in out:
            m = s.gt_instances.masks
            if not isinstance(m, BitmapMasks):
                m = m.cpu().numpy().astype('uint8')
                s.gt_instances.masks = BitmapMasks(m, *m.shape[1:]) if len(m) else \
                    BitmapMasks(m.reshape(0, *s.metainfo['img_shape'][:2]),
                                *s.metainfo['img_shape'][:2])
        return out
    model.project_pseudo_instances = project


def run_variant(variant, steps, teacher_ckpt, seed):
    import torch
    torch.set_num_threads(int(os.environ.get('BENCH_THREADS', torch.get_num_threads())))
    cfg, model = _build(variant, teacher_ckpt)
    if variant == 'mmdet_semi':
        _mmdet_masks_as_bitmaps(model)
    from mmengine.runner import Runner
    cfg.work_dir = '/tmp/mmssis_bench'
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=seed)
    it = iter(loader)
    batches = [next(it) for _ in range(steps)]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()

    def step(data):
        data = model.data_preprocessor(data, True)
        if variant == 'offline':  # a supervised step on as many images
            losses = model.student.loss(
                torch.cat([data['inputs']['sup'], data['inputs']['sup']]),
                data['data_samples']['sup'] + data['data_samples']['sup'])
        else:
            losses = model(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for data in batches:  # warm-up pass: allocator, oneDNN kernels, SAM cache
        step(data)
    times = []
    for data in batches:
        t = time.perf_counter()
        step(data)
        times.append(time.perf_counter() - t)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(variant=variant, step_s=sum(times) / len(times), steps=len(times),
                peak_rss_mb=peak_mb)


def machine():
    import torch

    from mmssis.utils.machine import cpu_info
    return dict(cpu=cpu_info()['model'], cores=os.cpu_count(), torch=torch.__version__,
                torch_threads=torch.get_num_threads(),
                gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--variants', nargs='+', default=VARIANTS, choices=VARIANTS)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--teacher', default='work_dirs/demo/sup/final.pth',
                        help='stage-1 checkpoint for the teacher (pseudo-labels exist only '
                        'with a trained teacher)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results', 'step_time'))
    parser.add_argument('--one', help=argparse.SUPPRESS)
    args = parser.parse_args()
    teacher = args.teacher if osp.isfile(args.teacher) else None
    if args.one:
        print('RESULT ' + json.dumps(run_variant(args.one, args.steps, teacher, args.seed)))
        return
    os.environ.setdefault('MMSSIS_DEMO_ROOT', osp.join(REPO, 'data', 'demo') + '/')
    # The refiner configs' disk cache: a fresh one, so `sam_cache` measures this run only.
    import tempfile
    os.environ['MMSSIS_SAM_CACHE'] = tempfile.mkdtemp(prefix='mmssis_bench_cache_')
    results = []
    for v in args.variants:
        out = subprocess.run([sys.executable, __file__, '--one', v, '--steps', str(args.steps),
                              '--teacher', args.teacher, '--seed', str(args.seed)],
                             capture_output=True, text=True, cwd=REPO,
                             env=dict(os.environ, PYTHONPATH=REPO))
        line = [ln for ln in out.stdout.splitlines() if ln.startswith('RESULT ')]
        if out.returncode != 0 or not line:
            raise SystemExit(f'variant {v} failed:\n{out.stderr[-3000:]}')
        res = json.loads(line[0][7:])
        print(f'{v:<11} {res["step_s"]:.3f} s/step  peak RSS {res["peak_rss_mb"]:.0f} MB',
              flush=True)
        results.append(res)
    by = {r['variant']: r for r in results}
    for r in results:
        for base in ('no_sam', 'mmdet_semi'):
            if base in by:
                r[f'ratio_to_{base}'] = r['step_s'] / by[base]['step_s']
    info = dict(machine=machine(), teacher=teacher, steps=args.steps, results=results)
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out + '.json', 'w') as f:
        json.dump(info, f, indent=2)
    m = info['machine']
    lines = [f'# Stage-2 step time on the demo ({args.steps} measured steps per variant)', '',
             f'Machine: {m["cpu"]}, {m["cores"]} cores, torch {m["torch"]} '
             f'({m["torch_threads"]} threads), GPU: {m["gpu"]}. Teacher: {teacher}.', '',
             '| variant | s / step | × no_sam | × mmdet_semi | peak RSS (MB) |',
             '| --- | --- | --- | --- | --- |']
    for r in results:
        lines.append(f'| {r["variant"]} | {r["step_s"]:.3f} | '
                     f'{r.get("ratio_to_no_sam", float("nan")):.2f} | '
                     f'{r.get("ratio_to_mmdet_semi", float("nan")):.2f} | '
                     f'{r["peak_rss_mb"]:.0f} |')
    with open(args.out + '.md', 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
