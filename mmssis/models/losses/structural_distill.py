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

Where SAM looks (``sam_input``):

* ``'view'`` (the official S4M code): SAM encodes the very view the detector sees (the
  de-normalised batch image, cropped to ``img_shape``), and ``P`` new query points are
  drawn every iteration. Token cells map to view pixels through SAM's own resize
  (:meth:`SamBackend.token_centres`); no homography is involved.
* ``'original'`` (mmssis option, used by the CPU demo): SAM encodes the original image
  from disk; with ``cache_targets=True`` an image's points are drawn once (seeded by its
  path) and its SAM rows cached, so SAM runs once per labelled image for the whole run.
  Token centres are mapped into the augmented view with the sample's
  ``homography_matrix`` (original -> view); a transformed sample without one is an error
  (:func:`~mmssis.structures.sample_homography`), never the identity.

In both cases the detector's features are sampled bilinearly at the token centres (in view
pixels over the padded batch tensor), and cells whose centre falls outside the view's
image (SAM padding, or the part of the original image cropped away) are ignored.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmengine import fileio
from torch import Tensor

from mmssis.models.utils.precision import outside_autocast
from mmssis.models.utils.normalization import view_normalization
from mmssis.structures import denormalize_views, project_masks, sample_homography
from mmssis.registry import MODELS
from mmssis.utils.rank_seed import torch_generator


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
        sam: Config of a SAM backend (``dict(type='Sam2Backend', config=..., checkpoint=...)``,
            ``dict(type='LiteMedSamBackend')``, ...) or a built backend.
        num_inside: Query points inside the union of GT masks per image (paper: 64).
        num_uniform: Uniform query points per image (paper: 64).
        loss_weight: Weight of the loss (paper: 1).
        beta: Smooth-L1 beta (paper: 1).
        sam_input: ``'view'`` (official: SAM on the detector's augmented view, points
            redrawn every step) or ``'original'`` (SAM on the original image, mapped to
            the view with ``homography_matrix``; allows ``cache_targets``). See the module
            docstring.
        point_box: Half side (pixels of SAM's image) of the box added around each point for
            box-only SAM backends (LiteMedSAM).
        prompts_per_call: SAM decoder prompts per call (bounds memory: each prompt yields a
            (C, h, w) token map).
        cache_targets: ``sam_input='original'`` only: fix the points of an image and cache
            its SAM rows. ``False`` draws new points every step, as the paper does.
        max_cache_items: Images whose targets are kept in memory.
        seed: Seed of the point draws (mixed with the image path, the step and the rank,
            :func:`~mmssis.utils.rank_seed.derived_seed`).
        backend_args: ``mmengine.fileio`` backend of the original images
            (``sam_input='original'``), as the data set's ``backend_args``.
    """

    SAM_INPUTS = ('view', 'original')

    def __init__(self, sam, num_inside: int = 64, num_uniform: int = 64,
                 loss_weight: float = 1.0, beta: float = 1.0, sam_input: str = 'original',
                 point_box: float = 8.0, prompts_per_call: int = 16,
                 cache_targets: bool = True, max_cache_items: int = 4096,
                 seed: int = 0, backend_args: Optional[dict] = None) -> None:
        if sam_input not in self.SAM_INPUTS:
            raise ValueError(f'sam_input must be one of {self.SAM_INPUTS}, got {sam_input!r}')
        if sam_input == 'view' and cache_targets:
            raise ValueError("cache_targets=True needs sam_input='original': a view changes "
                             'every step, so its SAM targets cannot be reused')
        self.sam = MODELS.build(sam) if isinstance(sam, dict) else sam
        self.backend_args = backend_args
        self.num_inside = int(num_inside)
        self.num_uniform = int(num_uniform)
        self.loss_weight = float(loss_weight)
        self.beta = float(beta)
        self.sam_input = sam_input
        self.point_box = float(point_box)
        self.prompts_per_call = int(prompts_per_call)
        self.cache_targets = bool(cache_targets)
        self.max_cache_items = int(max_cache_items)
        self.seed = int(seed)
        self._cache: 'OrderedDict[str, Tuple[Tensor, Tensor, Tensor, Tensor]]' = OrderedDict()
        self.hits = 0
        self.misses = 0

    # ------------------------------------------------------------------ targets
    def _generator(self, key: str) -> torch.Generator:
        """Point draws of image ``key``: once per image with ``cache_targets`` (step 0),
        else anew at every training step (derived from the step: exact on resume)."""
        return torch_generator(self.seed, 'distill_points', key,
                               step=0 if self.cache_targets else None)

    @torch.no_grad()
    def sam_targets(self, sample: DetDataSample, view: Optional[np.ndarray] = None
                    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """SAM self-similarity rows of one labelled sample.

        Args:
            sample: The labelled sample (``img_path``, ``gt_instances.masks`` in the view,
                ``homography_matrix`` for ``sam_input='original'``).
            view: ``sam_input='view'``: the ``(h, w, 3)`` uint8 RGB view image.

        Returns:
            ``(rows (P, L), query (P,), centres (L, 2), valid (L,))``: rows over the L token
            cells, the query cell indices, the cells' centres **in view pixels** and
            whether a centre lies on SAM's image.
        """
        meta = sample.metainfo
        key = str(meta.get('img_path', meta.get('img_id')))
        if self.sam_input == 'view':
            emb = self.sam.encode(view)
            centres, valid = self.sam.token_centres(emb)
            fg = self._foreground_cells(sample, centres, None)
            query = sample_query_cells(fg, valid, self.num_inside, self.num_uniform,
                                       self._generator(key))
            return self._sam_rows(emb, centres, valid, query).cpu(), query, centres, valid
        hom = sample_homography(sample)  # original -> this view
        if self.cache_targets and key in self._cache:
            self.hits += 1
            self._cache.move_to_end(key)
            rows, query, centres, valid = self._cache[key]
        else:
            self.misses += 1
            image = mmcv.imfrombytes(fileio.get(meta['img_path'], backend_args=self.backend_args),
                                     channel_order='rgb')
            emb = self.sam.encode(image)
            centres, valid = self.sam.token_centres(emb)
            fg = self._foreground_cells(sample, centres,
                                        (torch.linalg.inv(hom), emb.original_size))
            query = sample_query_cells(fg, valid, self.num_inside, self.num_uniform,
                                       self._generator(key))
            rows = self._sam_rows(emb, centres, valid, query).cpu()
            if self.cache_targets:
                self._cache[key] = (rows, query, centres, valid)
                if len(self._cache) > self.max_cache_items:
                    self._cache.popitem(last=False)
        # Original-frame centres -> this sample's view (cached rows serve every view).
        pts = torch.cat([centres, torch.ones(centres.shape[0], 1)], dim=1) @ hom.float().t()
        return rows, query, pts[:, :2] / pts[:, 2:3], valid

    def _foreground_cells(self, sample: DetDataSample, centres: Tensor,
                          to_frame: Optional[Tuple[Tensor, Tuple[int, int]]]) -> Tensor:
        """Cells whose centre lies inside the union of the sample's GT masks.

        Args:
            sample: The labelled sample; ``gt_instances.masks`` are in its view.
            centres: ``(L, 2)`` cell centres in SAM's image frame.
            to_frame: ``None`` when SAM's image is the view; else ``(view -> original
                homography, original (H, W))`` to warp the union into the original frame.
        """
        masks = sample.gt_instances.masks
        if not len(sample.gt_instances):
            return torch.zeros(centres.shape[0], dtype=torch.bool)
        union = torch.from_numpy(np.asarray(masks.masks).any(0, keepdims=True))
        if to_frame is None:
            img_h, img_w = sample.metainfo['img_shape'][:2]
            union = union[:, :img_h, :img_w]
        else:
            union = project_masks(union, to_frame[0], to_frame[1], mode='nearest')
        h, w = union.shape[-2:]
        xs = centres[:, 0].long().clamp(0, w - 1)
        ys = centres[:, 1].long().clamp(0, h - 1)
        return union[0, ys, xs].bool()

    def _sam_rows(self, emb, centres: Tensor, valid: Tensor, query: Tensor) -> Tensor:
        points = centres[query].to(self.sam.device)  # (P, 2) in SAM's image frame
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
    def loss(self, feat: Tensor, batch_data_samples: List[DetDataSample],
             batch_inputs: Optional[Tensor] = None,
             data_preprocessor=None) -> Dict[str, Tensor]:
        """Structural distillation loss of a batch.

        Args:
            feat: (B, C, Hf, Wf) detector features of the padded batch (view frame); the
                batch input is ``batch_input_shape`` pixels, which ``feat`` spans.
            batch_data_samples: Labelled samples (``img_path``, ``gt_instances.masks``,
                ``img_shape``, ``batch_input_shape``; ``homography_matrix`` when
                ``sam_input='original'`` and the view is transformed).
            batch_inputs: (B, 3, H, W) normalised batch (needed for ``sam_input='view'``).
            data_preprocessor: The detector's preprocessor (de-normalisation).

        Returns:
            ``{'loss_sam_distill': scalar}``.
        """
        self.sam.follow(feat.device)
        views = [None] * len(batch_data_samples)
        if self.sam_input == 'view':
            if batch_inputs is None or data_preprocessor is None:
                raise ValueError("sam_input='view' needs the batch inputs and the data "
                                 'preprocessor to show SAM the detector\'s view')
            views = denormalize_views(batch_inputs,
                                      [s.metainfo['img_shape'] for s in batch_data_samples],
                                      **view_normalization(data_preprocessor))
        losses = []
        for i, sample in enumerate(batch_data_samples):
            with outside_autocast(feat.device):  # SAM's targets in fp32, as officially
                rows_t, query, view_xy, valid = self.sam_targets(sample, views[i])
            if query.numel() == 0:
                continue
            pad_h, pad_w = sample.metainfo['batch_input_shape'][:2]
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
