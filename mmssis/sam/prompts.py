"""Prompt generation from teacher masks: logit-weighted point sampling, mask boxes.

All coordinates are pixels in the image frame of the given masks: a point
``(x, y)`` is the pixel at column ``x`` / row ``y`` (SAM's prompt encoder adds the
half-pixel shift itself); boxes are ``xyxy`` with exclusive max corner
(``x2 = last column + 1``), as mmdet's ``BitmapMasks.get_bboxes``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ['sample_points_from_logits', 'masks_to_boxes', 'boxes_to_masks', 'paired_mask_iou']

#: Maximum number of ``N*H*W`` elements processed at once while sampling.
_CHUNK_ELEMS = 1 << 24


def masks_to_boxes(masks: Tensor, fallback: Optional[Tensor] = None) -> Tensor:
    """Tight ``xyxy`` boxes around binary masks, in mmdet's pixel-edge convention.

    ``x2``/``y2`` are one past the last foreground column/row (as
    ``BitmapMasks.get_bboxes``), so a single pixel at ``(row i, col j)`` gives
    ``[j, i, j + 1, i + 1]``. :func:`torchvision.ops.masks_to_boxes` is not reused: it
    returns inclusive ``x2 = last column`` (pixel-index convention, which would shrink
    every box by one pixel next to ``bbox_project``) and older torchvision versions
    raise on empty masks.

    Args:
        masks: ``(N, H, W)``; any nonzero value is foreground (binarise soft masks first).
        fallback: Optional ``(N, 4)`` boxes used for empty masks (else zeros).

    Returns:
        ``(N, 4)`` float32 boxes ``(x1, y1, x2, y2)``.
    """
    if masks.dim() != 3:
        raise ValueError(f'masks must be (N, H, W), got {tuple(masks.shape)}')
    num, height, width = masks.shape
    boxes = torch.zeros((num, 4), dtype=torch.float32, device=masks.device)
    if num == 0:
        return boxes
    fg = masks != 0
    rows = fg.any(dim=2)  # (N, H)
    cols = fg.any(dim=1)  # (N, W)
    nonempty = rows.any(dim=1)
    if height and width:
        row_idx = torch.arange(height, device=masks.device)
        col_idx = torch.arange(width, device=masks.device)
        # First/last occupied index via masked min/max over the index ranges.
        y1 = torch.where(rows, row_idx, height).amin(dim=1)
        y2 = torch.where(rows, row_idx, -1).amax(dim=1) + 1
        x1 = torch.where(cols, col_idx, width).amin(dim=1)
        x2 = torch.where(cols, col_idx, -1).amax(dim=1) + 1
        stacked = torch.stack([x1, y1, x2, y2], dim=1).to(torch.float32)
        boxes[nonempty] = stacked[nonempty]
    if fallback is not None and not nonempty.all():
        boxes[~nonempty] = fallback.to(boxes)[~nonempty]
    return boxes


def paired_mask_iou(masks_a: Tensor, masks_b: Tensor) -> Tensor:
    """IoU of corresponding masks: ``(N, H, W)`` x ``(N, H, W)`` bool -> ``(N,)``.

    Two empty masks give 0.
    """
    inter = (masks_a & masks_b).flatten(1).sum(1).float()
    union = (masks_a | masks_b).flatten(1).sum(1).float().clamp(min=1)
    return inter / union


def boxes_to_masks(boxes: Tensor, size: Tuple[int, int]) -> Tensor:
    """Filled box masks: ``(N, 4)`` xyxy pixels -> ``(N, H, W)`` bool.

    Pixel ``(r, c)`` is inside when its centre ``(c + .5, r + .5)`` lies in the box.
    """
    h, w = size
    b = boxes.float()
    xs = torch.arange(w, device=b.device, dtype=torch.float32) + 0.5
    ys = torch.arange(h, device=b.device, dtype=torch.float32) + 0.5
    in_x = (xs[None] >= b[:, 0:1]) & (xs[None] <= b[:, 2:3])  # (N, W)
    in_y = (ys[None] >= b[:, 1:2]) & (ys[None] <= b[:, 3:4])  # (N, H)
    return in_y[:, :, None] & in_x[:, None, :]


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
