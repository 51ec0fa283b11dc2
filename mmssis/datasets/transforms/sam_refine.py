"""Refine ground-truth (or pseudo-label) instance masks with a frozen SAM in the pipeline.

Typical use: train on a COCO file of *pseudo-labels* (e.g. written without refinement) and
let SAM clean the masks while loading::

    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='mmssis.SamRefineInstances',
             refiner=dict(type='SamMaskRefiner', backend=dict(type='LiteMedSamBackend'),
                          num_points=0, use_box=True, multimask=False)),
        dict(type='RandomResize', ...), ...]

Placed right after ``LoadAnnotations`` the masks, boxes and image are all in the original
image frame and the SAM embedding cache (if configured) can key on ``img_path`` alone. The
transform also works after geometric transforms: it only needs ``results['img']`` and
``results['gt_masks']`` to share a frame (then the cache key includes the image shape and
homography).

Worker processes: the SAM network is *not* built in ``__init__`` and is dropped when the
transform is pickled, so a data loader with ``num_workers > 0`` builds it once per worker
process (on first use) instead of pickling weights into every worker.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.structures.bbox import BaseBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks

from mmssis.registry import TRANSFORMS

__all__ = ['SamRefineInstances']

#: LiteMedSAM was trained with box prompts: box-only, single-mask output works best.
DEFAULT_REFINER = dict(type='SamMaskRefiner', backend=dict(type='LiteMedSamBackend'),
                       num_points=0, use_box=True, multimask=False)


@TRANSFORMS.register_module()
class SamRefineInstances(BaseTransform):
    """Replace ``gt_masks`` by SAM's masks prompted with each instance's box (and points).

    Binary masks are turned into logits ``+logit_scale`` (inside) / ``-logit_scale``
    (outside), so point prompts (``num_points > 0``) are sampled uniformly inside each
    mask; ``gt_bboxes`` are the box prompts. Instances SAM returns empty (or below the
    refiner's ``iou_thr``) keep their input mask. The number and order of instances never
    change, so ``gt_bboxes_labels`` / ``gt_ignore_flags`` stay valid.

    Required keys: ``img`` ((H, W, 3) uint8, channel order ``channel_order``),
    ``gt_masks`` (``BitmapMasks``/``PolygonMasks`` of size (H, W)), ``gt_bboxes``
    (``HorizontalBoxes`` or (N, 4) array, xyxy pixels in the same frame).

    Modified keys: ``gt_masks`` (``BitmapMasks``, uint8), ``gt_bboxes`` (tight boxes of
    the new masks, exclusive max corner like ``BitmapMasks.get_bboxes``; same type as the
    input; the input box where a mask is empty).

    Args:
        refiner: Config of a :class:`mmssis.sam.SamMaskRefiner` (built lazily, once per
            process), or an already built refiner (then it is shared, not rebuilt).
        logit_scale: Magnitude of the logits made from binary masks.
        channel_order: Channel order of ``results['img']``; mmcv's ``LoadImageFromFile``
            gives ``'bgr'``.
        use_cache_key: Pass a cache key (image path + view geometry) to the refiner so
            that an embedding cache configured on the refiner is used.
    """

    def __init__(self, refiner: Union[Dict[str, Any], Any, None] = None,
                 logit_scale: float = 10.0, channel_order: str = 'bgr',
                 use_cache_key: bool = True) -> None:
        if channel_order not in ('rgb', 'bgr'):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        if logit_scale <= 0:
            raise ValueError(f'logit_scale must be > 0, got {logit_scale}')
        if refiner is None:
            refiner = DEFAULT_REFINER
        # A config is built lazily (per process); a pre-built refiner is used as is.
        self._owns_refiner = isinstance(refiner, dict)
        self.refiner_cfg = copy.deepcopy(refiner) if self._owns_refiner else None
        self._refiner = None if self._owns_refiner else refiner
        self.logit_scale = float(logit_scale)
        self.channel_order = channel_order
        self.use_cache_key = use_cache_key

    # ------------------------------------------------------------------ refiner
    @property
    def refiner(self):
        """The :class:`SamMaskRefiner`, built on first access in this process."""
        if self._refiner is None:
            from mmssis.registry import MODELS
            import mmssis.sam  # noqa: F401  (registers the SAM backends and the refiner)
            self._refiner = MODELS.build(copy.deepcopy(self.refiner_cfg))
        return self._refiner

    def __getstate__(self) -> dict:
        # Data loader workers receive a pickled copy of the pipeline: never ship SAM's
        # weights there -- each worker builds its own refiner on first use.
        state = self.__dict__.copy()
        if self._owns_refiner:
            state['_refiner'] = None
        return state

    # --------------------------------------------------------------- transform
    def transform(self, results: dict) -> dict:
        """Refine ``results['gt_masks']`` in place; see the class docstring."""
        img = results['img']
        h, w = img.shape[:2]
        masks = self._as_bitmap(results['gt_masks'], h, w)
        n = len(masks)
        boxes_in = results.get('gt_bboxes')
        if n == 0:  # nothing to refine: do not even build SAM
            results['gt_masks'] = masks
            return results
        mask_arr = torch.from_numpy(np.ascontiguousarray(masks.masks)).bool()
        logits = torch.where(mask_arr, self.logit_scale, -self.logit_scale)
        prompt_boxes = self._box_tensor(boxes_in, n)
        res = self.refiner.refine(img, logits, prompt_boxes, cache_key=self._cache_key(results),
                                  channel_order=self.channel_order)
        new_masks = res.masks.cpu().numpy().astype(np.uint8)
        results['gt_masks'] = BitmapMasks(new_masks, h, w)
        results['gt_bboxes'] = self._like(boxes_in, res.boxes.cpu())
        return results

    @staticmethod
    def _as_bitmap(masks, h: int, w: int) -> BitmapMasks:
        if isinstance(masks, PolygonMasks):
            masks = BitmapMasks(masks.to_ndarray(), masks.height, masks.width)
        if not isinstance(masks, BitmapMasks):
            raise TypeError(f'gt_masks must be BitmapMasks or PolygonMasks, got {type(masks)}')
        if (masks.height, masks.width) != (h, w):
            raise ValueError(f'gt_masks are {masks.height}x{masks.width} but the image is '
                             f'{h}x{w}: put SamRefineInstances where masks and image share '
                             'a frame (e.g. right after LoadAnnotations)')
        return masks

    @staticmethod
    def _box_tensor(boxes, n: int) -> Optional[torch.Tensor]:
        """(N, 4) float32 xyxy tensor of the input boxes (None if absent)."""
        if boxes is None:
            return None
        t = boxes.tensor if isinstance(boxes, BaseBoxes) else torch.as_tensor(np.asarray(boxes))
        t = t.float().reshape(-1, 4)
        if t.shape[0] != n:
            raise ValueError(f'{n} gt_masks but {t.shape[0]} gt_bboxes')
        return t

    @staticmethod
    def _like(template, boxes: torch.Tensor):
        """``boxes`` (N, 4) in the container type of ``template`` (mmdet box or array)."""
        if isinstance(template, BaseBoxes):
            return type(template)(boxes.to(template.tensor.dtype))
        return boxes.numpy().astype(np.float32)

    def _cache_key(self, results: dict) -> Optional[str]:
        if not self.use_cache_key or results.get('img_path') is None:
            return None
        from mmssis.sam import make_cache_key
        hom = results.get('homography_matrix')
        view = (tuple(results['img'].shape[:2]), hom if hom is not None else None)
        return make_cache_key(results['img_path'], view)

    def __repr__(self) -> str:
        ref = self.refiner_cfg if self.refiner_cfg is not None else self._refiner
        return (f'{type(self).__name__}(refiner={ref!r}, logit_scale={self.logit_scale}, '
                f'channel_order={self.channel_order!r})')
