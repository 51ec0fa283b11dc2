"""Prompt generation from teacher masks: logit-weighted point sampling.

All coordinates are pixels in the image frame of the given masks: a point
``(x, y)`` is the pixel at column ``x`` / row ``y`` (SAM's prompt encoder adds the
half-pixel shift itself); boxes are ``xyxy`` with exclusive max corner
(``x2 = last column + 1``), as mmdet's ``BitmapMasks.get_bboxes``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from mmssis.structures import boxes_to_masks

__all__ = ['sample_points_from_logits']

#: Maximum number of ``N*H*W`` elements processed at once while sampling.
_CHUNK_ELEMS = 1 << 24


def sample_points_from_logits(logits: Tensor, num_points: int = 3,
                              generator: Optional[torch.Generator] = None,
                              temperature: float = 1.0,
                              fallback_boxes: Optional[Tensor] = None,
                              logit_thr: Optional[float] = 0.0) -> Tuple[Tensor, Tensor]:
    """Samples positive point prompts inside each instance, weighted by its logits.

    For instance ``i`` the candidate region is ``logits[i] > logit_thr`` (i.e.
    ``sigmoid > 0.5`` for the default 0). ``num_points`` distinct pixels are drawn
    **without replacement** with probability proportional to
    ``softmax(logits[i] / temperature)`` restricted to that region, using the
    Gumbel-top-k trick (exactly equivalent to sequential sampling without
    replacement, but batched over instances).

    Empty regions fall back to the pixels inside ``fallback_boxes[i]`` (if given
    and non-empty), else to the whole image. Regions with fewer than
    ``num_points`` pixels yield padding points with label ``-1`` (ignored by SAM).

    Args:
        logits: ``(N, H, W)`` float mask logits in the image frame.
        num_points: ``K`` points per instance.
        generator: Optional ``torch.Generator`` for reproducible draws (CPU or the
            logits' device).
        temperature: Softmax temperature (>0); larger is closer to uniform.
        fallback_boxes: Optional ``(N, 4)`` xyxy boxes for empty instances.
        logit_thr: Foreground threshold on the logits; ``None`` samples from the softmax
            over *all* pixels of the map (the official S4M code).

    Returns:
        ``(points, labels)``: ``(N, K, 2)`` float ``xy`` pixel coordinates and
        ``(N, K)`` int64 labels (1 = sampled positive point, -1 = padding).
    """
    if logits.dim() != 3:
        raise ValueError(f'logits must have shape (N, H, W), got {tuple(logits.shape)}')
    if temperature <= 0:
        raise ValueError('temperature must be > 0')
    n, h, w = logits.shape
    dev = logits.device
    k = int(num_points)
    points = torch.zeros((n, k, 2), dtype=torch.float32, device=dev)
    labels = torch.full((n, k), -1, dtype=torch.int64, device=dev)
    if n == 0 or k == 0:
        return points, labels
    k_eff = min(k, h * w)
    gen_dev = generator.device if generator is not None else dev
    chunk = max(1, _CHUNK_ELEMS // max(1, h * w))
    for s in range(0, n, chunk):
        lg = logits[s:s + chunk].float()
        region = lg > logit_thr if logit_thr is not None else torch.ones_like(lg, dtype=torch.bool)
        empty = ~region.flatten(1).any(dim=1)
        if empty.any():
            fb = torch.ones_like(region[empty])
            if fallback_boxes is not None:
                bm = boxes_to_masks(fallback_boxes[s:s + chunk][empty].to(dev), (h, w))
                ok = bm.flatten(1).any(dim=1)
                fb[ok] = bm[ok]
            region[empty] = fb
        u = torch.rand(lg.shape, generator=generator, device=gen_dev).to(dev)
        gumbel = -torch.log(-torch.log(u.clamp_(1e-20, 1.0 - 1e-7)))
        scores = (lg / temperature + gumbel).masked_fill_(~region, float('-inf'))
        val, idx = scores.flatten(1).topk(k_eff, dim=1)
        valid = torch.isfinite(val)
        pts = torch.stack([idx % w, idx // w], dim=-1).float()
        points[s:s + chunk, :k_eff] = torch.where(valid[..., None], pts, 0.0)
        labels[s:s + chunk, :k_eff] = torch.where(valid, 1, -1)
    return points, labels
