"""Paper-scale step time on one GPU: S4M with SAM 2 Hiera-L and Mask2Former R50.

Random-initialised networks (nothing downloads: SAM 2 Hiera-L is built from its config and
saved to a temporary checkpoint, the ResNet-50 has no pretrained weights) on synthetic
1024-px images that go through the COCO configs' real pipelines (large-scale jitter), with
2 labelled + 2 unlabelled images per GPU and AMP (``AmpOptimWrapper``), as the configs run.

Variants, each built from a shipped config (`configs/s4m/*-0.1-coco.py`):

* ``stage2_no_sam``     ``gd_mask2former_...``: teacher -> filter -> projection -> student;
* ``stage2_sam_online`` ``s4m_mask2former_...``: + SAM 2 refinement of the teacher's view
  (encode every step), ARP and the batch strong augmentation;
* ``stage2_sam_cache``  the same with SAM on the *original* images and the embedding cache
  warm (``embed_on='original'``, every image seen once before), i.e. the cached path;
* ``stage1_plain``      ``mask2former_..._sup-...``: the supervised teacher;
* ``stage1_distill``    ``s4m-distill_...``: + structural distillation (128 query points
  on the view, SAM 2 decoder tokens).

A random teacher has no query above the paper's 0.7 class threshold, so stage 2 keeps the
``--pseudo`` most confident queries per image (threshold 0, :func:`cap_pseudo_candidates`:
every Mask2Former query is a candidate, ``max_per_image`` does not apply) to refine and
mix: the cost of SAM grows with that number. Figures: mean seconds per iteration over
``--iters`` timed iterations after ``--warmup``, peak GPU memory, written to ``--out``.

``--tiny`` swaps in the tiny test models and 256 px (CPU smoke run of this script).
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
S4M = 'configs/s4m/'
CONFIGS = {
    'stage2_no_sam': S4M + 'gd_mask2former_r50_368k_semi-0.1-coco.py',
    'stage2_sam_online': S4M + 's4m_mask2former_r50_368k_semi-0.1-coco.py',
    'stage2_sam_cache': S4M + 's4m_mask2former_r50_368k_semi-0.1-coco.py',
    'stage1_plain': S4M + 'mask2former_r50_368k_sup-0.1-coco.py',
    'stage1_distill': S4M + 's4m-distill_mask2former_r50_368k_sup-0.1-coco.py',
}
CLASSES = ('a', 'b', 'c')
LABELED = 'annotations/instances_train.json'
UNLABELED = 'annotations/instances_train.1@8-unlabeled.json'


def write_data(root: str, num: int, size: int) -> None:
    """``num`` synthetic images (smooth colour fields with 3-6 ellipses) and COCO jsons."""
    import cv2
    import numpy as np
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(0)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    images, anns = [], []
    for i in range(num):
        h, w = (size, int(size * 1.33)) if i % 2 else (int(size * 0.75), size)
        img = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (w, h),
                         interpolation=cv2.INTER_CUBIC)
        for _ in range(int(rng.integers(3, 7))):
            m = np.zeros((h, w), np.uint8)
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.integers(w // 16, w // 4)), int(rng.integers(h // 16, h // 4)))
            cv2.ellipse(m, c, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
            img[m > 0] = rng.integers(0, 255, 3)
            rle = mask_utils.encode(np.asfortranarray(m))
            x, y, bw, bh = mask_utils.toBbox(rle).tolist()
            rle['counts'] = rle['counts'].decode()
            anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=int(rng.integers(1, 4)),
                             segmentation=rle, area=float(m.sum()), bbox=[x, y, bw, bh],
                             iscrowd=0))
        cv2.imwrite(osp.join(root, 'images', f'{i:04d}.png'), img)
        images.append(dict(id=i + 1, file_name=f'{i:04d}.png', height=h, width=w))
    cats = [dict(id=k + 1, name=c) for k, c in enumerate(CLASSES)]
    # The file names of a demo data set, so that `--tiny` can use shrink_paper_config.
    for name, a in ((LABELED, anns), (UNLABELED, [])):
        with open(osp.join(root, name), 'w') as f:
            json.dump(dict(images=images, annotations=a, categories=cats), f)


def build_cfg(variant: str, data_root: str, sam_backend: dict, args):
    from mmengine.config import Config, ConfigDict

    from mmssis.testing.paper_run import shrink_paper_config, swap_sam_backends
    cfg = Config.fromfile(osp.join(REPO, CONFIGS[variant]))
    stage2 = variant.startswith('stage2')
    if args.tiny:
        shrink_paper_config(cfg, data_root, tempfile.mkdtemp(), sam_backend, CLASSES,
                            image_size=256, batch_size=4 if stage2 else 2)
    else:
        swap_sam_backends(cfg.model, sam_backend)
        det = cfg.model.detector if stage2 else cfg.model
        det.backbone.init_cfg = None  # no ImageNet download
        det.panoptic_head.num_things_classes = len(CLASSES)
        det.panoptic_head.loss_cls.class_weight = [1.0] * len(CLASSES) + [0.1]
        det.panoptic_fusion_head.num_things_classes = len(CLASSES)
        loader = cfg.train_dataloader
        loader.num_workers = 2
        loader.persistent_workers = False
        datasets = loader.dataset.get('datasets', [loader.dataset])
        for ds, ann in zip(datasets, (LABELED, UNLABELED)):
            ds.update(data_root=data_root + '/', ann_file=ann, data_prefix=dict(img='images/'),
                      metainfo=dict(classes=CLASSES))
        if stage2:
            loader.batch_size = 4
            loader.sampler.batch_size = 4
            loader.sampler.source_ratio = [2, 2]
        else:
            loader.batch_size = 2
    if stage2:
        semi = cfg.model.semi_train_cfg
        semi.score_thr = 0.0
        cfg.model.detector.test_cfg.max_per_image = args.pseudo
        if variant == 'stage2_sam_cache':
            semi.sam_refiner.embed_on = 'original'
            semi.sam_refiner.view_extent = 'content'  # a canvas exists only for views
            semi.sam_refiner.cache = ConfigDict(max_items=4096)
    if args.device == 'cpu':
        cfg.optim_wrapper.type = 'OptimWrapper'
        cfg.optim_wrapper.pop('loss_scale', None)
    return cfg


def benchmark_sam(tmp: str, tiny: bool) -> dict:
    """Backend config of the benchmark's SAM, saved under ``tmp``: a random SAM 2 Hiera-L
    (paper size), or with ``tiny`` a random SAM 2.1 Hiera-T at 128 px."""
    import torch

    from mmssis.testing.paper_run import save_tiny_sam2
    if tiny:
        return save_tiny_sam2(osp.join(tmp, 'sam2_tiny.pt'), 128)
    from mmssis.sam.sam2_backend import build_sam2_network
    torch.manual_seed(0)
    net = build_sam2_network('configs/sam2/sam2_hiera_l.yaml')
    path = osp.join(tmp, 'sam2_hiera_large_random.pt')
    torch.save({'model': net.state_dict()}, path)
    return dict(type='mmssis.Sam2Backend', config='configs/sam2/sam2_hiera_l.yaml',
                checkpoint=path)


def cap_pseudo_candidates(k: int) -> None:
    """Keep the ``k`` highest-scoring teacher candidates per image (every stage-2 model).

    S4M takes every Mask2Former query as a candidate (100), filtered by the class score;
    a random teacher's scores carry no meaning, so the benchmark fixes their number.
    """
    import torch

    from mmssis.models.detectors import semi_mask_detector
    full = getattr(semi_mask_detector.teacher_pseudo_instances, '__wrapped__',
                   semi_mask_detector.teacher_pseudo_instances)

    def top_k(*args, **kwargs):
        return [inst[torch.argsort(inst.scores, descending=True)[:k]]
                for inst in full(*args, **kwargs)]
    top_k.__wrapped__ = full
    semi_mask_detector.teacher_pseudo_instances = top_k


def run_variant(variant: str, data_root: str, sam_backend: dict, args) -> dict:
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from mmssis.registry import MODELS
    cfg = build_cfg(variant, data_root, sam_backend, args)
    cap_pseudo_candidates(args.pseudo)
    with DefaultScope.overwrite_default_scope('mmssis'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model).to(args.device)
        model.init_weights()
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    cuda = args.device.startswith('cuda')
    it = iter(loader)
    batches = [next(it) for _ in range(args.warmup + args.iters)] \
        if variant == 'stage2_sam_cache' else None
    times = []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for step in range(args.warmup + args.iters):
        # The cached variant replays its warm-up batches: every image is then in the cache.
        data = copy.deepcopy(batches[step % args.warmup]) if batches is not None else next(it)
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        logs = model.train_step(data, optim)
        if cuda:
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - t)
    out = dict(variant=variant, config=CONFIGS[variant], s_per_iter=sum(times) / len(times),
               iters=len(times), min_s=min(times), max_s=max(times))
    if cuda:
        out['peak_gpu_mem_gib'] = torch.cuda.max_memory_allocated() / 2**30
    for key in ('unsup_pseudo_num_teacher', 'unsup_sam_used', 'arp_pasted',
                'sam_cache_hit_rate', 'loss_sam_distill'):
        if key in logs:
            out[key] = float(torch.as_tensor(logs[key]).detach())
    del model, optim, loader
    if cuda:
        torch.cuda.empty_cache()
    return out


def deform_attn_kernel(device: str) -> str:
    """Which multi-scale deformable attention the Mask2Former pixel decoder runs on ``device``.

    mmcv built without its CUDA ops (``benchmarks/gpu_bare_machine.sh`` falls back to that when
    the CUDA build fails) has no CUDA kernel: the op is then switched to mmcv's own PyTorch
    implementation, and the report says so.
    """
    if not device.startswith('cuda'):
        return 'pytorch (CPU)'
    import torch
    from mmcv.ops import multi_scale_deform_attn as msda
    value = torch.zeros(1, 4, 1, 2, device=device)
    shapes = torch.tensor([[2, 2]], device=device)
    start = torch.tensor([0], device=device)
    loc = torch.full((1, 1, 1, 1, 1, 2), 0.5, device=device)
    weights = torch.ones(1, 1, 1, 1, 1, device=device)
    try:
        msda.MultiScaleDeformableAttnFunction.apply(value, shapes, start, loc, weights, 64)
        return 'mmcv CUDA kernel'
    except Exception as exc:  # the op's dispatcher finds no CUDA implementation
        msda.IS_CUDA_AVAILABLE = False
        return ('mmcv PyTorch implementation (mmcv built without CUDA ops: '
                f'{type(exc).__name__})')


def write_report(path: str, rows, args, device_name: str) -> None:
    by = {r['variant']: r for r in rows}
    ref2 = by.get('stage2_no_sam', {}).get('s_per_iter')
    ref1 = by.get('stage1_plain', {}).get('s_per_iter')
    lines = [
        '# GPU step time: S4M at paper scale (SAM 2 Hiera-L, Mask2Former R50)', '',
        f'Machine: {device_name}; torch {args.torch_version}; {platform.platform()}.',
        f'Command: `bash benchmarks/gpu_step_time.sh` (`python benchmarks/gpu_step_time.py '
        f'--device {args.device} --iters {args.iters} --warmup {args.warmup} --pseudo '
        f'{args.pseudo}{" --tiny" if args.tiny else ""}`). Random-initialised networks, '
        + ('tiny test models on 256-px images, fp32 (a smoke run, not paper scale)'
           if args.tiny else 'SAM 2 Hiera-L and Mask2Former R50 on synthetic 1024-px images '
           'through the COCO LSJ pipelines, AMP')
        + f'; deformable attention: {args.deform_attn}'
        + f', 2 labelled + 2 unlabelled images per iteration; {args.pseudo} pseudo-instances '
        'per unlabelled image. `sam_cache_hit_rate` counts the warm-up misses too.', '',
        '| variant | s/iter | x baseline | peak GPU mem (GiB) |', '| --- | --- | --- | --- |']
    for r in rows:
        if 'error' in r:
            lines.append(f'| {r["variant"]} | failed: {r["error"]} | - | - |')
            continue
        ref = ref2 if r['variant'].startswith('stage2') else ref1
        ratio = f'{r["s_per_iter"] / ref:.2f}' if ref else '-'
        mem = f'{r["peak_gpu_mem_gib"]:.1f}' if 'peak_gpu_mem_gib' in r else '-'
        lines.append(f'| {r["variant"]} | {r["s_per_iter"]:.3f} | {ratio} | {mem} |')
    lines += ['', 'Baselines: `stage2_no_sam` for stage 2, `stage1_plain` for stage 1.', '']
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write('\n'.join(lines))
    with open(osp.splitext(path)[0] + '.json', 'w') as f:
        json.dump(dict(device=device_name, torch=args.torch_version,
                       deform_attn=args.deform_attn, rows=rows), f, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--pseudo', type=int, default=10,
                        help='pseudo-instances per unlabelled image (teacher top-k)')
    parser.add_argument('--variants', nargs='+', default=list(CONFIGS))
    parser.add_argument('--tiny', action='store_true', help='tiny models, 256 px (CPU smoke)')
    parser.add_argument('--out', default=osp.join(REPO, 'benchmarks/results/gpu_step_time.md'))
    args = parser.parse_args()
    import torch

    from mmssis.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    args.torch_version = torch.__version__
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        write_report_no_gpu(args.out)
        raise SystemExit(f'no GPU available: wrote the statement to {args.out}')
    device_name = torch.cuda.get_device_name() if args.device.startswith('cuda') \
        else f'CPU ({os.cpu_count()} cores)'
    args.deform_attn = deform_attn_kernel(args.device)
    tmp = tempfile.mkdtemp(prefix='gpu_step_time_')
    write_data(osp.join(tmp, 'data'), 8, 256 if args.tiny else 1024)
    sam = benchmark_sam(tmp, args.tiny)
    rows = []
    for variant in args.variants:
        t = time.time()
        try:
            rows.append(run_variant(variant, osp.join(tmp, 'data'), sam, args))
        except Exception as exc:  # one broken variant must not cost the others' figures
            import traceback
            traceback.print_exc()
            rows.append(dict(variant=variant, config=CONFIGS[variant],
                             error=f'{type(exc).__name__}: {exc}'[:300]))
        print(json.dumps(rows[-1]), f'({time.time() - t:.0f} s)', flush=True)
        write_report(args.out, rows, args, device_name)
    print(f'written {args.out}')


def write_report_no_gpu(path: str) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write('# GPU step time: S4M at paper scale (SAM 2 Hiera-L, Mask2Former R50)\n\n'
                'No GPU was available when `benchmarks/gpu_step_time.sh` last ran '
                f'({time.strftime("%Y-%m-%d")}): no figures. Run it on a CUDA machine; it '
                'rewrites this file with the measured table.\n')


if __name__ == '__main__':
    main()
