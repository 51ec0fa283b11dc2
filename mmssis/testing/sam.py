"""Tiny SAM models for tests: a randomly initialised ``Sam`` and a deterministic fake.

* :func:`build_tiny_sam` -- a real ``segment_anything.modeling.Sam`` with a
  1-block, 32-dim ViT encoder (128-px input, 8x8 embedding grid): exercises the
  genuine prompt encoder / mask decoder code paths in milliseconds.
* :func:`build_echo_sam` -- a ``Sam`` whose prompt encoder passes raw input-frame
  coordinates through and whose mask decoder *draws* the prompt (the box, or
  squares around the positive points) at input resolution. With it, masks
  returned in the original image frame can be checked against the prompts
  exactly, which validates every coordinate mapping of a backend.
"""
from __future__ import annotations

from functools import partial
from typing import Optional, Sequence, Tuple

import torch
from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                       TwoWayTransformer)
from torch import Tensor, nn

__all__ = ['build_tiny_sam', 'build_echo_sam', 'echo_box_refiner', 'echo_box_refiner']


def build_tiny_sam(seed: int = 0, img_size: int = 128, dim: int = 32) -> Sam:
    """Randomly initialised tiny SAM (deterministic for a given ``seed``).

    Args:
        seed: Initialisation seed (the global RNG state is left untouched).
        img_size: Square input length; the embedding grid is ``img_size // 16``.
        dim: Embedding / transformer width (divisible by 8).

    Returns:
        A ``segment_anything.modeling.Sam`` in eval mode (~0.1M parameters).
    """
    grid = img_size // 16
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Sam(
            image_encoder=ImageEncoderViT(
                img_size=img_size, patch_size=16, in_chans=3, embed_dim=dim, depth=1,
                num_heads=2, mlp_ratio=2.0, out_chans=dim, qkv_bias=True,
                norm_layer=partial(nn.LayerNorm, eps=1e-6), use_rel_pos=False,
                window_size=0, global_attn_indexes=()),
            prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(grid, grid),
                                         input_image_size=(img_size, img_size), mask_in_chans=4),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=2 * dim,
                                              num_heads=2),
                transformer_dim=dim, iou_head_depth=2, iou_head_hidden_dim=dim),
        ).eval()


class _ZeroEncoder(nn.Module):
    """Image encoder stand-in: ``(1, 3, S, S) -> zeros (1, C, S/16, S/16)``."""

    def __init__(self, img_size: int, dim: int) -> None:
        super().__init__()
        self.img_size = img_size
        self.dim = dim
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        g = self.img_size // 16
        return x.new_zeros((x.shape[0], self.dim, g, g)) * self.scale


class _EchoPromptEncoder(nn.Module):
    """Returns the raw prompts (input frame) as ``(N, T, dim)`` "embeddings":
    row ``[x, y, label, 0, ...]`` per point, labels 2/3 for box corners."""

    def __init__(self, img_size: int, dim: int) -> None:
        super().__init__()
        self.grid = img_size // 16
        self.dim = dim

    def get_dense_pe(self) -> Tensor:
        return torch.zeros((1, self.dim, self.grid, self.grid))

    def forward(self, points: Optional[Tuple[Tensor, Tensor]], boxes: Optional[Tensor],
                masks: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        rows = []
        if points is not None:
            coords, labels = points
            rows.append(torch.cat([coords, labels[..., None].float()], dim=-1))
        if boxes is not None:
            corners = boxes.reshape(-1, 2, 2)
            lab = corners.new_tensor([2.0, 3.0]).expand(corners.shape[0], 2)[..., None]
            rows.append(torch.cat([corners, lab], dim=-1))
        sparse = torch.cat(rows, dim=1)
        sparse = nn.functional.pad(sparse, (0, self.dim - 3))
        dense = sparse.new_zeros((sparse.shape[0], self.dim, self.grid, self.grid))
        return sparse, dense


class _EchoTransformer(nn.Module):
    """``(src (B,C,h,w), pos, tokens) -> (tokens, src as (B, h*w, C))``."""

    def forward(self, src: Tensor, pos: Tensor, tokens: Tensor) -> Tuple[Tensor, Tensor]:
        return tokens, src.flatten(2).transpose(1, 2)


class _EchoMaskDecoder(nn.Module):
    """Draws each prompt at input resolution ``(S, S)``.

    A box prompt draws the box (pixels whose centre is inside); otherwise each
    positive point draws a ``(2r+1)^2`` square. Logits are +10 inside, -10 outside.
    Multimask output: only mask index ``best_index`` carries the drawing (the
    others are empty); predicted IoUs are ``iou_values``.
    """

    num_multimask_outputs = 3

    def __init__(self, img_size: int, dim: int, radius: int, iou_values: Sequence[float],
                 best_index: int) -> None:
        super().__init__()
        self.img_size = img_size
        self.transformer_dim = dim
        self.radius = radius
        self.transformer = _EchoTransformer()
        self.iou_values = torch.tensor(list(iou_values), dtype=torch.float32)
        self.best_index = best_index

    def _draw(self, prompt: Tensor) -> Tensor:
        s = self.img_size
        c = torch.arange(s, dtype=torch.float32) + 0.5
        lab = prompt[:, 2]
        box = prompt[lab >= 2, :2]
        if box.shape[0] == 2:
            (x1, y1), (x2, y2) = box.tolist()
            inside = ((c[None, :] >= x1) & (c[None, :] <= x2)
                      & (c[:, None] >= y1) & (c[:, None] <= y2))
        else:
            inside = torch.zeros((s, s), dtype=torch.bool)
            for x, y in prompt[lab == 1, :2].tolist():
                xi, yi, r = int(x), int(y), self.radius
                inside[max(0, yi - r):yi + r + 1, max(0, xi - r):xi + r + 1] = True
        return torch.where(inside, 10.0, -10.0)

    def forward(self, image_embeddings: Tensor, image_pe: Tensor, sparse_prompt_embeddings: Tensor,
                dense_prompt_embeddings: Tensor, multimask_output: bool) -> Tuple[Tensor, Tensor]:
        n = sparse_prompt_embeddings.shape[0]
        src = image_embeddings.expand(n, -1, -1, -1) + dense_prompt_embeddings
        self.transformer(src, image_pe, sparse_prompt_embeddings)
        drawn = torch.stack([self._draw(p) for p in sparse_prompt_embeddings.cpu()])
        if not multimask_output:
            return drawn[:, None], torch.full((n, 1), float(self.iou_values.max()))
        masks = torch.full((n, 3, self.img_size, self.img_size), -10.0)
        masks[:, self.best_index] = drawn
        return masks, self.iou_values.expand(n, 3).clone()


def build_echo_sam(img_size: int = 256, dim: int = 16, radius: int = 2,
                   iou_values: Sequence[float] = (0.5, 0.9, 0.7), best_index: int = 1) -> Sam:
    """Deterministic fake ``Sam`` drawing its prompts (see module docstring).

    Args:
        img_size: Square input length ``S``.
        dim: Fake embedding width.
        radius: Half size of the square drawn around each positive point (input
            frame pixels).
        iou_values: The 3 predicted IoUs returned for multimask output.
        best_index: Which of the 3 masks carries the drawing (set it to the argmax
            of ``iou_values`` for a consistent fake).
    """
    return Sam(image_encoder=_ZeroEncoder(img_size, dim),
               prompt_encoder=_EchoPromptEncoder(img_size, dim),
               mask_decoder=_EchoMaskDecoder(img_size, dim, radius, iou_values, best_index)).eval()


def echo_box_refiner(img_size: int = 256, **kwargs):
    """A box-only :class:`mmssis.sam.SamMaskRefiner` on :func:`build_echo_sam`: each refined
    mask is exactly the filled tight box of its prompt mask (single-mask output, no points,
    so no sampling). ``kwargs`` (``embed_on``, ``policy`` ...) go to the refiner."""
    from mmssis.sam import SamMaskRefiner, SamModelBackend
    return SamMaskRefiner(SamModelBackend(build_echo_sam(img_size=img_size)), num_points=0,
                          use_box=True, multimask=False, seed=0, **kwargs)
