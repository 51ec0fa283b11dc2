"""Paper-size S4M training steps on the CPU, split into their parts.

The real `s4m_mask2former_r50_368k_semi-0.05-coco.py` (stage 2) and
`s4m-distill_mask2former_r50_368k_sup-0.05-coco.py` (stage 1) models at full size:
Mask2Former R50 and SAM 2 Hiera-L, randomly initialised (nothing downloads), on synthetic
1024-px images through the configs' own LSJ pipelines (the data of
``benchmarks/gpu_step_time.py``), 1 labelled + 1 unlabelled image per step so that a step
fits the 24 GB of this workplace's machines. A random teacher keeps no query above the paper's
0.7 threshold, so stage 2 keeps the ``--pseudo`` most confident queries per image
(threshold 0, ``gpu_step_time.cap_pseudo_candidates``).

Per step, the seconds of: the teacher, SAM's image encoder, SAM's prompt decoding, the
projection into the student view, the strong augmentation, the student's forward (losses)
and the rest (backward + optimizer update + the data preprocessor); the share of SAM in the
step; peak RSS; and how many mask copies per step would cross host <-> device on a GPU
(:func:`count_mask_transfers`). ARP cannot mix one unlabelled image per process (the
paper layout has 3), so it is switched off in the step and timed on its own, on a
3-image 1024-px batch with ``--pseudo`` masks per image and the paper's settings.

Writes ``--out`` (markdown) and the same name with ``.json``. ``--tiny`` runs the same code
on the tiny test models at 256 px (a smoke run).
"""
import argparse
import contextlib
import copy
import json
import os
import os.path as osp
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.join(REPO, 'benchmarks'))
VARIANTS = {'stage2': 'stage2_sam_online', 'stage1': 'stage1_distill'}
CONFIGS = {'stage2': 'configs/s4m/s4m_mask2former_r50_368k_semi-0.05-coco.py',
           'stage1': 'configs/s4m/s4m-distill_mask2former_r50_368k_sup-0.05-coco.py'}


class Timers:
    """Seconds per named part, accumulated over wrapped calls (nested calls count once)."""

    def __init__(self) -> None:
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t
                self.calls[name] += 1
        timed.__wrapped__ = getattr(fn, '__wrapped__', fn)
        return timed

    def patch(self, obj, attr, name):
        """Time ``obj.attr`` (an instance or module attribute) as ``name``."""
        object.__setattr__(obj, attr, self.wrap(name, getattr(obj, attr)))

    def reset(self):
        self.seconds.clear()
        self.calls.clear()


def _mask_like(x) -> bool:
    """A stack of masks: 3-D, bool / uint8, not an ``(H, W, 3)`` / ``(3, H, W)`` image."""
    import numpy as np
    import torch
    dtype_ok = (x.dtype in (torch.bool, torch.uint8) if isinstance(x, torch.Tensor) else
                x.dtype in (np.bool_, np.uint8))
    return dtype_ok and x.ndim == 3 and x.shape[-1] > 4 and x.shape[0] != 3


@contextlib.contextmanager
def count_mask_transfers(counter):
    """Count, inside a training step, the mask copies that cross host <-> device on a GPU.

    ``device->host``: ``Tensor.cpu()`` / ``.numpy()`` of a mask stack, and the host copy of
    a ``TensorMasks`` (``.masks``); ``host->device``: ``torch.from_numpy`` /
    ``torch.as_tensor`` of a host mask stack and ``BitmapMasks.to_tensor`` of numpy masks
    made inside the step (pseudo-labels). The labelled images' masks come from the data
    pipeline as numpy: their one ``to_tensor`` is counted apart (``labelled host->device``).
    ``container changes`` counts the ``BitmapMasks`` (numpy) made inside the step, but not
    those derived from the labelled masks (``pad``).
    """
    import torch
    from mmdet.structures.mask import BitmapMasks
    try:
        from mmssis.structures import TensorMasks
    except ImportError:  # trees before TensorMasks
        TensorMasks = None
    made = set()
    saved_init, saved_to_tensor = BitmapMasks.__init__, BitmapMasks.to_tensor
    saved = dict(cpu=torch.Tensor.cpu, numpy=torch.Tensor.numpy,
                 from_numpy=torch.from_numpy, as_tensor=torch.as_tensor)

    def init(self, *args, **kwargs):
        # A BitmapMasks made by a method of another (``pad``, ``crop``) is of its lineage:
        # the pipeline's labelled masks padded by the data preprocessor stay "labelled".
        src = sys._getframe(1).f_locals.get('self')
        if not isinstance(src, BitmapMasks) or id(src) in made:
            made.add(id(self))
            counter['container changes'] += 1
        return saved_init(self, *args, **kwargs)

    def to_tensor(self, *args, **kwargs):
        if TensorMasks is None or not isinstance(self, TensorMasks):
            key = 'host->device' if id(self) in made else 'labelled host->device'
            counter[key] += 1
        return saved_to_tensor(self, *args, **kwargs)

    def to_host(name):
        def fn(self, *args, **kwargs):
            if _mask_like(self):
                counter['device->host'] += 1
            return saved[name](self, *args, **kwargs)
        return fn

    def from_host(name):
        def fn(data, *args, **kwargs):
            if not isinstance(data, torch.Tensor) and hasattr(data, 'ndim') and \
                    _mask_like(data):
                counter['host->device'] += 1
            return saved[name](data, *args, **kwargs)
        return fn

    BitmapMasks.__init__, BitmapMasks.to_tensor = init, to_tensor
    torch.Tensor.cpu, torch.Tensor.numpy = to_host('cpu'), to_host('numpy')
    torch.from_numpy, torch.as_tensor = from_host('from_numpy'), from_host('as_tensor')
    try:
        yield
    finally:
        BitmapMasks.__init__, BitmapMasks.to_tensor = saved_init, saved_to_tensor
        torch.Tensor.cpu, torch.Tensor.numpy = saved['cpu'], saved['numpy']
        torch.from_numpy, torch.as_tensor = saved['from_numpy'], saved['as_tensor']


def build(variant, data_root, sam, args):
    import torch
    from gpu_step_time import build_cfg, cap_pseudo_candidates
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from mmssis.registry import MODELS
    ns = argparse.Namespace(tiny=args.tiny, device='cpu', pseudo=args.pseudo)
    cfg = build_cfg(VARIANTS[variant], data_root, sam, ns)
    cap_pseudo_candidates(args.pseudo)
    cfg.model.pop('init_cfg', None)
    loader = cfg.train_dataloader
    loader.num_workers = 0
    loader.persistent_workers = False
    if variant == 'stage2':
        loader.batch_size = loader.sampler.batch_size = 2
        loader.sampler.source_ratio = [1, 1]
        cfg.model.semi_train_cfg.instance_mixer = None  # timed on its own (one image here)
    else:
        loader.batch_size = 1
    with DefaultScope.overwrite_default_scope('mmssis'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        data = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    return cfg, model, data, optim


def instrument(variant, model, timers):
    from mmssis.models.detectors import semi_mask_detector
    if variant == 'stage2':
        timers.patch(semi_mask_detector, 'teacher_pseudo_instances', 'teacher')
        refiner = model.sam_refiner
        backend = getattr(refiner, 'refiner', refiner).backend  # nested before the merge
        timers.patch(model, 'project_pseudo_instances', 'projection')
        aug = model.student_augment
        if aug is not None:
            proxy = copy.copy(aug)
            object.__setattr__(model, '_student_augment', timers.wrap('augmentation', proxy))
        timers.patch(model, 'loss_by_gt_instances', 'student forward')
        timers.patch(model, 'loss_by_pseudo_instances', 'student forward')
    else:
        backend = model.distiller.sam
        timers.patch(model, 'loss', 'student forward (incl. SAM targets)')
    # the image encoder (trees before the refiner merge wrapped it as ``encode_uncached``)
    timers.patch(backend, 'encode_uncached' if hasattr(backend, 'encode_uncached')
                 else 'encode', 'SAM encode')
    if variant == 'stage2':
        timers.patch(backend, 'predict_low_res', 'SAM decode')
        timers.patch(backend, 'postprocess_masks', 'SAM decode')
    else:  # distillation targets: the decoder's image tokens of 128 point prompts
        timers.patch(backend, 'decoder_image_tokens', 'SAM decode')
    return backend


def run_variant(variant, data_root, sam, args):
    cfg, model, data, optim = build(variant, data_root, sam, args)
    timers = Timers()
    instrument(variant, model, timers)
    it = iter(data)
    steps = []
    for step in range(args.warmup + args.steps):
        batch = next(it)
        timers.reset()
        conversions = defaultdict(int)
        with count_mask_transfers(conversions):
            t = time.perf_counter()
            logs = model.train_step(batch, optim)
            total = time.perf_counter() - t
        if step < args.warmup:
            continue
        parts = dict(timers.seconds)
        if variant == 'stage1':
            sam_s = parts.get('SAM encode', 0) + parts.get('SAM decode', 0)
            parts['student forward (incl. SAM targets)'] -= sam_s
        parts['rest (backward, update, preprocessing)'] = total - sum(parts.values())
        steps.append(dict(total=total, parts=parts, conversions=dict(conversions),
                          pseudo=float(logs.get('unsup_pseudo_num_teacher', 0))))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    names = list(steps[0]['parts'])
    out = dict(variant=variant, config=CONFIGS[variant], steps=len(steps),
               s_per_step=mean([s['total'] for s in steps]),
               parts={n: mean([s['parts'].get(n, 0.0) for s in steps]) for n in names},
               mask_conversions=steps[-1]['conversions'],
               pseudo_per_image=steps[-1]['pseudo'])
    sam = out['parts'].get('SAM encode', 0) + out['parts'].get('SAM decode', 0)
    out['sam_share'] = sam / out['s_per_step']
    del model, optim, data
    return out


def time_arp(args):
    """ARP alone, paper settings, on 3 images with ``--pseudo`` masks each."""
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from mmssis.models.augments import ARPInstanceMixer
    size = 256 if args.tiny else 1024
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(3, 3, size, size, generator=g)
    samples = []
    for _ in range(3):
        masks = torch.zeros(args.pseudo, size, size, dtype=torch.bool)
        for k in range(args.pseudo):
            y, x = torch.randint(0, size * 3 // 4, (2, ), generator=g).tolist()
            h, w = torch.randint(size // 16, size // 4, (2, ), generator=g).tolist()
            masks[k, y:y + h, x:x + w] = True
        s = DetDataSample(metainfo=dict(img_shape=(size, size)))
        s.gt_instances = InstanceData(masks=masks, labels=torch.zeros(args.pseudo).long(),
                                      bboxes=torch.zeros(args.pseudo, 4))
        samples.append(s)
    # The paper configs' ARP (``s4m_arp_dynamic`` of this tree), min_area at this size.
    from mmengine.config import Config
    arp = Config.fromfile(osp.join(REPO, 'configs/_base_/s4m_parts.py')).s4m_arp_dynamic
    arp = dict(arp, min_area=arp['min_area'] * (size / 1024) ** 2, seed=0)
    arp.pop('type')
    mixer = ARPInstanceMixer(**arp)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        mixer(inputs, samples)
        times.append(time.perf_counter() - t)
    return min(times)


def cpu_model() -> str:
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
        return next(l.split(':', 1)[1].strip() for l in out.splitlines()
                    if l.startswith('Model name'))
    except (OSError, StopIteration):
        return platform.processor() or 'unknown CPU'


def git_head() -> str:
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO,
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        return 'unknown'


def write(path, rows, arp_s, args):
    lines = [f'# Paper-size S4M steps on the CPU ({git_head()})', '',
             f'Machine: {cpu_model()}, {os.cpu_count()} cores, torch threads '
             f'{args.threads}; {platform.platform()}. Command: `python '
             f'benchmarks/paper_scale_cpu.py --steps {args.steps} --warmup {args.warmup} '
             f'--pseudo {args.pseudo}{" --tiny" if args.tiny else ""}`; 1 labelled + 1 '
             'unlabelled image per step, random weights, '
             + ('tiny models at 256 px.' if args.tiny else
                'Mask2Former R50 + SAM 2 Hiera-L at 1024 px.'), '']
    for r in rows:
        lines += [f'## {r["variant"]}: `{osp.basename(r["config"])}`', '',
                  f'{r["s_per_step"]:.1f} s per step (mean of {r["steps"]}), SAM '
                  f'{100 * r["sam_share"]:.0f} % of it; {r["pseudo_per_image"]:.0f} '
                  'pseudo-instances per unlabelled image; mask copies host <-> device in a '
                  f'step: {r["mask_conversions"] or "none"}.', '',
                  '| part | s | share |', '| --- | --- | --- |']
        lines += [f'| {n} | {s:.2f} | {100 * s / r["s_per_step"]:.0f} % |'
                  for n, s in r['parts'].items()]
        lines.append('')
    lines += [f'ARP alone (paper settings, 3 images, {args.pseudo} masks each): '
              f'{arp_s:.2f} s.', '',
              f'Peak RSS of the process: {peak_rss_gib():.1f} GiB.', '']
    with open(path, 'w') as f:
        f.write('\n'.join(lines))
    with open(osp.splitext(path)[0] + '.json', 'w') as f:
        json.dump(dict(head=git_head(), cpu=cpu_model(), rows=rows, arp_s=arp_s,
                       peak_rss_gib=peak_rss_gib()), f, indent=2)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--pseudo', type=int, default=20)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--variants', nargs='+', default=['stage2', 'stage1'],
                        choices=list(VARIANTS))
    parser.add_argument('--tiny', action='store_true')
    parser.add_argument('--out', default=osp.join(REPO, 'benchmarks/results/'
                                                        'paper_scale_cpu.md'))
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    from gpu_step_time import benchmark_sam, write_data

    from mmssis.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    tmp = tempfile.mkdtemp(prefix='paper_scale_cpu_')
    write_data(osp.join(tmp, 'data'), 4, 256 if args.tiny else 1024)
    sam = benchmark_sam(tmp, args.tiny)
    rows = []
    for variant in args.variants:
        t = time.time()
        rows.append(run_variant(variant, osp.join(tmp, 'data'), sam, args))
        print(json.dumps(rows[-1]), f'({time.time() - t:.0f} s)', flush=True)
    arp_s = time_arp(args)
    write(args.out, rows, arp_s, args)
    print(f'written {args.out}')


if __name__ == '__main__':
    main()
