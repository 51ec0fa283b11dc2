"""S4M structural distillation: teach the detector SAM's notion of object structure.

For each image, ``P`` query points are taken on SAM's token grid (half inside the union of
the ground-truth masks, half uniform). At every point the *self-similarity row* of a
feature map -- the cosine similarity between the feature at that point and the features at
all grid cells -- is computed

* for SAM: on the mask decoder's image tokens after its last two-way block, prompted with
  that single point (``SamBackend.decoder_image_tokens``; box-only backends such as
  LiteMedSAM get the point plus a small box around it), and
* for the detector: on its dense feature map (Mask R-CNN: the finest FPN level; Mask2Former:
  the pixel decoder's mask features), resampled onto the same SAM token grid.

The loss is smooth-L1 (``beta=1``) between the two rows, averaged over points and valid grid
cells.

Frames. SAM's token grid lives in SAM's input frame (the original image resized so its
longest side is ``image_size`` and padded bottom/right to a square); cell ``(i, j)`` has its
centre at ``(4j + 2, 4i + 2) / s`` in original-image pixels (``s`` = resize factor, grid
stride = ``image_size / grid``). Cells whose centre falls in the padding are ignored. The
detector's feature map lives in the augmented *view* frame; token centres are mapped there
with the sample's ``homography_matrix`` (original -> view) and the features sampled
bilinearly.

Cost. SAM targets depend only on the image and the points; with ``cache_targets=True`` the
points of an image are drawn once (seeded by the image path) and its target rows are cached,
so SAM runs once per labelled image for the whole run. ``cache_targets=False`` draws new
points every step, as the paper does, at the cost of a SAM decoder pass per step.
"""
import hashlib
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from torch import Tensor

from mmssis.models.utils.mask_projection import project_masks, sample_homography
from mmssis.registry import MODELS


def self_similarity_rows(feat: Tensor, index: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """Cosine similarity between the features at ``index`` and every cell.

    Args:
        feat: (C, L) features of L grid cells.
        index: (P,) long, query cells.
        valid: Optional (L,) bool; invalid cells get similarity 0.

    Returns:
        (P, L) similarity rows in [-1, 1].
    """
    f = F.normalize(feat.float(), dim=0, eps=1e-6)
    rows = f[:, index].t() @ f
    if valid is not None:
        rows = rows * valid.to(rows.dtype)[None]
    return rows


def token_centres(input_size: Tuple[int, int], original_size: Tuple[int, int],
                  grid: Tuple[int, int], image_size: int) -> Tuple[Tensor, Tensor]:
    """Original-frame centres of SAM token cells and which of them lie on the image.

    Args:
        input_size: (h', w') of the resized image inside SAM's square input.
        original_size: (H, W) of the original image.
        grid: (gh, gw) token grid.
        image_size: Side of SAM's square input.

    Returns:
        ``(centres, valid)``: (gh * gw, 2) xy in original pixels, (gh * gw,) bool.
    """
    gh, gw = grid
    stride_y, stride_x = image_size / gh, image_size / gw
    ys = (torch.arange(gh, dtype=torch.float32) + 0.5) * stride_y
    xs = (torch.arange(gw, dtype=torch.float32) + 0.5) * stride_x
    yy, xx = torch.meshgrid(ys, xs, indexing='ij')
    valid = (yy < input_size[0]) & (xx < input_size[1])
    scale_y = input_size[0] / original_size[0]
    scale_x = input_size[1] / original_size[1]
    centres = torch.stack([xx / scale_x, yy / scale_y], dim=-1).reshape(-1, 2)
    return centres, valid.reshape(-1)


def sample_query_cells(fg: Tensor, valid: Tensor, num_inside: int, num_uniform: int,
                       generator: torch.Generator) -> Tensor:
    """Pick query cells: ``num_inside`` on foreground cells, ``num_uniform`` anywhere valid.

    Args:
        fg: (L,) bool, cells inside the union of GT masks.
        valid: (L,) bool, cells on the image.
        num_inside: Points inside the masks (falls back to uniform when there is no
            foreground).
        num_uniform: Uniform points.
        generator: Seeded generator.

    Returns:
        (P,) long cell indices (with replacement when there are few cells).
    """
    fg = fg & valid
    pools = [(fg if fg.any() else valid, num_inside), (valid, num_uniform)]
    picks = []
    for pool, n in pools:
        idx = pool.nonzero().flatten()
        if n <= 0 or idx.numel() == 0:
            continue
        choice = torch.randint(idx.numel(), (n, ), generator=generator)
        picks.append(idx[choice])
    return torch.cat(picks) if picks else torch.zeros(0, dtype=torch.long)


@MODELS.register_module()
class SamStructuralDistiller:
    """Computes the structural distillation loss for a batch (plain object, holds SAM).

    Args:
        sam: Config of a SAM backend (``dict(type='LiteMedSamBackend')``,
            ``dict(type='SegmentAnythingBackend', model_type='vit_h', checkpoint=...)``)
            or a built backend.
        num_inside: Query points inside the union of GT masks per image (paper: 64).
        num_uniform: Uniform query points per image (paper: 64).
        loss_weight: Weight of the loss (paper: 1).
        beta: Smooth-L1 beta (paper: 1).
        point_box: Half side (original pixels) of the box added around each point for
            box-only SAM backends.
        prompts_per_call: SAM decoder prompts per call (bounds memory: each prompt yields a
            (C, 64, 64) token map).
        cache_targets: Fix the points of an image and cache its SAM rows (see module doc).
        max_cache_items: Images whose targets are kept in memory.
    """

    def __init__(self, sam, num_inside: int = 64, num_uniform: int = 64,
                 loss_weight: float = 1.0, beta: float = 1.0, point_box: float = 8.0,
                 prompts_per_call: int = 16, cache_targets: bool = True,
                 max_cache_items: int = 4096) -> None:
        self.sam = MODELS.build(sam) if isinstance(sam, dict) else sam
        self.num_inside = int(num_inside)
        self.num_uniform = int(num_uniform)
        self.loss_weight = float(loss_weight)
        self.beta = float(beta)
        self.point_box = float(point_box)
        self.prompts_per_call = int(prompts_per_call)
        self.cache_targets = bool(cache_targets)
        self.max_cache_items = int(max_cache_items)
        self._cache: 'OrderedDict[str, Tuple[Tensor, Tensor, Tensor, Tensor]]' = OrderedDict()
        self.hits = 0
        self.misses = 0
        self._step = 0

    # ------------------------------------------------------------------ targets
    def _seed(self, key: str) -> int:
        if not self.cache_targets:
            self._step += 1
            key = f'{key}#{self._step}'
        return int(hashlib.sha1(key.encode()).hexdigest()[:12], 16)

    @torch.no_grad()
    def sam_targets(self, sample: DetDataSample) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """SAM self-similarity rows of one labelled sample.

        Returns:
            ``(rows (P, L), query (P,), centres (L, 2), valid (L,))``: rows over the L token
            cells, the query cell indices, the cells' original-frame centres and validity.
        """
        meta = sample.metainfo
        key = str(meta.get('img_path', meta.get('img_id')))
        if self.cache_targets and key in self._cache:
            self.hits += 1
            self._cache.move_to_end(key)
            return self._cache[key]
        self.misses += 1
        image = mmcv.imread(meta['img_path'], channel_order='rgb')
        emb = self.sam.encode(image)
        grid = tuple(emb.embedding.shape[-2:])
        centres, valid = token_centres(emb.input_size, emb.original_size, grid,
                                       self.sam.image_size)
        fg = self._foreground_cells(sample, centres, emb.original_size)
        gen = torch.Generator().manual_seed(self._seed(key))
        query = sample_query_cells(fg, valid, self.num_inside, self.num_uniform, gen)
        rows = self._sam_rows(emb, centres, valid, query)
        out = (rows.cpu(), query, centres, valid)
        if self.cache_targets:
            self._cache[key] = out
            if len(self._cache) > self.max_cache_items:
                self._cache.popitem(last=False)
        return out

    def _foreground_cells(self, sample: DetDataSample, centres: Tensor,
                          original_size: Tuple[int, int]) -> Tensor:
        """Cells whose centre is inside the union of GT masks (masks warped to original)."""
        masks = sample.gt_instances.masks
        union = torch.from_numpy(np.asarray(masks.masks).any(0, keepdims=True)) \
            if len(sample.gt_instances) else None
        if union is None:
            return torch.zeros(centres.shape[0], dtype=torch.bool)
        to_original = torch.linalg.inv(sample_homography(sample))
        union = project_masks(union, to_original, original_size, mode='nearest')[0]
        h, w = original_size
        xs = centres[:, 0].long().clamp(0, w - 1)
        ys = centres[:, 1].long().clamp(0, h - 1)
        return union[ys, xs].bool()

    def _sam_rows(self, emb, centres: Tensor, valid: Tensor, query: Tensor) -> Tensor:
        points = centres[query].to(self.sam.device)  # (P, 2) original frame
        rows = []
        for start in range(0, points.shape[0], self.prompts_per_call):
            pts = points[start:start + self.prompts_per_call]
            boxes = None
            if self.sam.requires_box:
                d = self.point_box
                boxes = torch.cat([pts - d, pts + d], dim=1)
            tokens = self.sam.decoder_image_tokens(
                emb, pts[:, None], torch.ones(pts.shape[0], 1, device=pts.device), boxes)
            flat = tokens.flatten(2)  # (n, C, L)
            for k, q in enumerate(query[start:start + self.prompts_per_call]):
                rows.append(self_similarity_rows(flat[k], q[None], valid.to(flat.device))[0])
        return torch.stack(rows) if rows else torch.zeros(0, valid.numel())

    # -------------------------------------------------------------------- loss
    def loss(self, feat: Tensor, batch_data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        """Structural distillation loss of a batch.

        Args:
            feat: (B, C, Hf, Wf) detector features of the padded batch (view frame); the
                batch input is ``Hf * stride`` pixels high, stride inferred from
                ``batch_input_shape``.
            batch_data_samples: Labelled samples (``img_path``, ``homography_matrix``,
                ``gt_instances.masks``, ``batch_input_shape``).

        Returns:
            ``{'loss_sam_distill': scalar}``.
        """
        losses = []
        for i, sample in enumerate(batch_data_samples):
            rows_t, query, centres, valid = self.sam_targets(sample)
            if query.numel() == 0:
                continue
            pad_h, pad_w = sample.metainfo['batch_input_shape'][:2]
            hom = sample_homography(sample).to(torch.float32)
            pts = torch.cat([centres, torch.ones(centres.shape[0], 1)], dim=1) @ hom.t()
            view_xy = pts[:, :2] / pts[:, 2:3]
            img_h, img_w = sample.metainfo['img_shape'][:2]
            inside = (view_xy[:, 0] >= 0) & (view_xy[:, 0] < img_w) & \
                (view_xy[:, 1] >= 0) & (view_xy[:, 1] < img_h)
            cell_ok = (valid & inside).to(feat.device)
            grid = torch.stack([view_xy[:, 0] / pad_w * 2 - 1, view_xy[:, 1] / pad_h * 2 - 1],
                               dim=-1).to(feat)
            sampled = F.grid_sample(feat[i:i + 1], grid[None, None], mode='bilinear',
                                    align_corners=False)[0, :, 0]  # (C, L)
            keep = cell_ok[query.to(feat.device)]
            if not keep.any():
                continue
            rows_s = self_similarity_rows(sampled, query.to(feat.device)[keep], cell_ok)
            target = rows_t.to(feat.device)[keep] * cell_ok.to(rows_s.dtype)[None]
            per = F.smooth_l1_loss(rows_s, target, beta=self.beta, reduction='none')
            losses.append(per.sum() / (keep.sum() * cell_ok.sum()).clamp(min=1))
        if not losses:
            return {'loss_sam_distill': feat.sum() * 0.0}
        return {'loss_sam_distill': self.loss_weight * torch.stack(losses).mean()}

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
