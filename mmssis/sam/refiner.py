"""S4M online pseudo-mask refinement with a frozen SAM.

For every teacher instance, ``num_points`` positive points are sampled inside the
teacher's (binarised) mask with probability ``softmax(mask logits)``; SAM is
prompted with these points (plus the teacher box when ``use_box`` or when the
backend is box-only), the multimask output with the highest predicted IoU is
kept, and (optionally) instances whose predicted IoU is below ``iou_thr`` keep
the teacher's mask. One image encode (cacheable) and one batched mask-decoder
call per image.
"""
from __future__ import annotations

from typing import Any, Dict, Hashable, NamedTuple, Optional, Union

import torch
from torch import Tensor

from mmssis.registry import MODELS
from mmssis.structures import masks_to_boxes, paired_mask_iou
from .base import ImageEmbedding, ImageLike, SamBackend
from .cache import build_embedding_cache
from .prompts import sample_points_from_logits
from mmssis.utils.rank_seed import run_seed, torch_generator

__all__ = ['SamMaskRefiner', 'RefinedInstances']


class RefinedInstances(NamedTuple):
    """Result of :meth:`SamMaskRefiner.refine` (unpackable as a tuple).

    Attributes:
        masks: ``(N, H, W)`` bool refined masks at image size.
        boxes: ``(N, 4)`` float xyxy boxes recomputed from ``masks`` (exclusive max
            corner); the input box for an empty mask.
        iou_pred: ``(N,)`` SAM's predicted IoU of the selected mask.
        from_sam: ``(N,)`` bool, False where the teacher mask was kept (IoU gate
            failed or SAM returned an empty mask).
    """

    masks: Tensor
    boxes: Tensor
    iou_pred: Tensor
    from_sam: Tensor


@MODELS.register_module()
class SamMaskRefiner:
    """Refines teacher instance masks with SAM (S4M pseudo-label refinement).

    A plain object (not an ``nn.Module``), like its backend: it can be stored on a
    detector without SAM entering ``state_dict``/EMA/optimizer.

    Args:
        backend: A :class:`SamBackend` or its config, e.g.
            ``dict(type='LiteMedSamBackend')`` (built from ``mmssis`` MODELS).
        num_points: Positive points sampled per instance (``K``, S4M uses 3).
        use_box: Also prompt with the teacher box (forced for box-only backends).
        multimask: Ask SAM for its 3 masks and keep the best by predicted IoU;
            else use the single-mask output.
        iou_thr: Keep the teacher mask when SAM's predicted IoU is below this
            (``None``/0 disables the gate).
        min_teacher_iou: Keep the teacher mask when SAM's mask overlaps it with IoU below
            this (``None``/0 disables the gate). Guards against SAM "collapsing" onto a
            part or the background of a confident teacher instance, which a model
            trained on another domain (e.g. LiteMedSAM) does on some instances.
        temperature: Softmax temperature of point sampling.
        point_region: Where points are drawn. ``'mask'`` (mmssis default): the softmax of
            the logits restricted to the teacher's binarised mask. ``'all'`` (official
            S4M): the softmax over all pixels of the instance's mask-logit map (points may
            then fall outside the teacher mask where its logits are close to 0).
        seed: Seed of point sampling (``None``: the run's seed). Each call draws from a
            generator derived from ``(seed, step, rank, key)``
            (:func:`~mmssis.utils.rank_seed.torch_generator`): nothing carries over from one
            step to the next, so a resumed run draws what the uninterrupted one drew.
        cache: Optional embedding cache (an ``EmbeddingCache`` or its kwargs);
            installed on the backend, so ``encode`` goes through it.
        fusion: How SAM's mask replaces the teacher's. ``'replace'`` (S4M): SAM's binary
            mask. ``'mean_prob'``: pixels where the mean of the teacher's and SAM's
            foreground probabilities is >= 0.5 -- the two vote with their confidence, so
            a pixel the teacher is unsure of follows SAM and vice versa (useful when SAM
            is a domain-shifted model, e.g. LiteMedSAM on natural images).
        empty_fallback: ``True`` (mmssis default): where SAM's mask is empty the teacher's
            is kept. ``False`` (official S4M): SAM's mask replaces the teacher's even when
            it is empty.
    """

    FUSIONS = ('replace', 'mean_prob')

    def __init__(self, backend: Union[SamBackend, Dict[str, Any]], num_points: int = 3,
                 use_box: bool = False, multimask: bool = True,
                 iou_thr: Optional[float] = None, temperature: float = 1.0,
                 seed: Optional[int] = None, cache: Any = None,
                 min_teacher_iou: Optional[float] = None, fusion: str = 'replace',
                 point_region: str = 'mask', empty_fallback: bool = True) -> None:
        if point_region not in ('mask', 'all'):
            raise ValueError(f"point_region must be 'mask' or 'all', got {point_region!r}")
        self.point_region = point_region
        if fusion not in self.FUSIONS:
            raise ValueError(f'fusion must be one of {self.FUSIONS}, got {fusion!r}')
        self.fusion = fusion
        if isinstance(backend, dict):
            backend = MODELS.build(backend)
        if not isinstance(backend, SamBackend):
            raise TypeError(f'backend must be a SamBackend or its config, got {type(backend)}')
        self.backend = backend
        if cache is not None:
            self.backend.cache = build_embedding_cache(cache)
        self.num_points = int(num_points)
        self.use_box = bool(use_box)
        self.multimask = bool(multimask)
        self.iou_thr = iou_thr
        self.min_teacher_iou = min_teacher_iou
        self.temperature = float(temperature)
        self.empty_fallback = bool(empty_fallback)
        self.seed = run_seed() if seed is None else int(seed)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(backend={self.backend!r}, num_points={self.num_points}, '
                f'use_box={self.use_box}, multimask={self.multimask}, iou_thr={self.iou_thr}, '
                f'fusion={self.fusion!r}, point_region={self.point_region!r})')

    def point_generator(self, *keys: Hashable) -> torch.Generator:
        """The point-sampling generator of this training step for ``keys`` (e.g. the image)."""
        return torch_generator(self.seed, 'sam_points', *keys)

    @property
    def cache(self):
        return self.backend.cache

    def encode(self, image: ImageLike, cache_key: Optional[Hashable] = None,
               channel_order: str = 'rgb') -> ImageEmbedding:
        """Shortcut for ``backend.encode`` (goes through the cache)."""
        return self.backend.encode(image, cache_key=cache_key, channel_order=channel_order)

    def refine(self, image: ImageLike, mask_logits: Tensor, boxes: Optional[Tensor] = None,
               cache_key: Optional[Hashable] = None, channel_order: str = 'rgb',
               generator: Optional[torch.Generator] = None) -> RefinedInstances:
        """Encodes ``image`` (once) and refines its instances.

        Args:
            image: ``(H, W, 3)`` uint8 image (see :meth:`SamBackend.encode`).
            mask_logits: ``(N, H, W)`` teacher mask logits at image size.
            boxes: ``(N, 4)`` teacher boxes, xyxy pixels in the image frame.
            cache_key: Embedding cache key of this view (see ``make_cache_key``).
            channel_order: ``'rgb'`` or ``'bgr'``.
            generator: Point-sampling generator (see :meth:`refine_embedding`).

        Returns:
            :class:`RefinedInstances` on ``mask_logits``' device.
        """
        n = int(mask_logits.shape[0])
        if n == 0:  # nothing to refine: skip the encoder as well
            return self._empty(mask_logits, boxes)
        emb = self.encode(image, cache_key=cache_key, channel_order=channel_order)
        return self.refine_embedding(emb, mask_logits, boxes, generator=generator)

    __call__ = refine

    @torch.no_grad()
    def refine_embedding(self, emb: ImageEmbedding, mask_logits: Tensor,
                         boxes: Optional[Tensor] = None,
                         generator: Optional[torch.Generator] = None) -> RefinedInstances:
        """Refines instances of an image whose embedding is already computed.

        Args:
            emb: Embedding of the image, ``emb.original_size == (H, W)``.
            mask_logits: ``(N, H, W)`` teacher mask logits (foreground: > 0).
            boxes: Optional ``(N, 4)`` xyxy teacher boxes; derived from the
                binarised teacher masks when needed and not given.
            generator: Point-sampling generator; ``None``: :meth:`point_generator` of the
                step with no key.

        Returns:
            :class:`RefinedInstances` on ``mask_logits``' device.
        """
        if mask_logits.dim() != 3:
            raise ValueError(f'mask_logits must be (N, H, W), got {tuple(mask_logits.shape)}')
        out_dev = mask_logits.device
        n = mask_logits.shape[0]
        if n == 0:
            return self._empty(mask_logits, boxes)
        if tuple(mask_logits.shape[1:]) != emb.original_size:
            raise ValueError(f'mask_logits are {tuple(mask_logits.shape[1:])} but the image '
                             f'embedding was computed for {emb.original_size}')
        if boxes is not None:
            boxes = torch.as_tensor(boxes, dtype=torch.float32, device=out_dev)
            if boxes.shape != (n, 4):
                raise ValueError(f'boxes must be ({n}, 4), got {tuple(boxes.shape)}')
        teacher = mask_logits > 0
        points, labels = sample_points_from_logits(
            mask_logits, self.num_points,
            generator=generator if generator is not None else self.point_generator(),
            temperature=self.temperature, fallback_boxes=boxes,
            logit_thr=0.0 if self.point_region == 'mask' else None)
        prompt_boxes = None
        if self.use_box or self.backend.requires_box:
            prompt_boxes = boxes if boxes is not None else masks_to_boxes(teacher)
            empty = prompt_boxes[:, 2:].le(prompt_boxes[:, :2]).any(dim=1)
            if empty.any():  # empty teacher mask and no box: whole image
                h, w = emb.original_size
                prompt_boxes = prompt_boxes.clone()
                prompt_boxes[empty] = prompt_boxes.new_tensor([0.0, 0.0, w, h])
        low_res, iou = self.backend.predict_low_res(
            emb, boxes=prompt_boxes, points=points if self.num_points > 0 else None,
            point_labels=labels if self.num_points > 0 else None, multimask=self.multimask)
        best = iou.argmax(dim=1)
        ar = torch.arange(n, device=iou.device)
        iou_best = iou[ar, best]
        logits_best = self.backend.postprocess_masks(emb, low_res[ar, best][:, None])[:, 0]
        logits_best = logits_best.to(out_dev)
        if self.fusion == 'mean_prob':
            # Both are logits (SAM's threshold is its mask_threshold, 0 for SAM).
            sam_prob = torch.sigmoid(logits_best - self.backend.mask_threshold)
            sam_masks = (sam_prob + torch.sigmoid(mask_logits.float())) >= 1.0
        else:
            sam_masks = logits_best > self.backend.mask_threshold
        iou_best = iou_best.to(out_dev)
        from_sam = sam_masks.flatten(1).any(dim=1) if self.empty_fallback else \
            torch.ones(n, dtype=torch.bool, device=out_dev)
        if self.iou_thr:
            from_sam &= iou_best >= self.iou_thr
        if self.min_teacher_iou:
            from_sam &= paired_mask_iou(sam_masks, teacher) >= self.min_teacher_iou
        masks = torch.where(from_sam[:, None, None], sam_masks, teacher)
        fallback = boxes if boxes is not None else masks_to_boxes(teacher)
        return RefinedInstances(masks, masks_to_boxes(masks, fallback=fallback), iou_best,
                                from_sam)

    @staticmethod
    def _empty(mask_logits: Tensor, boxes: Optional[Tensor]) -> RefinedInstances:
        dev = mask_logits.device
        return RefinedInstances(
            torch.zeros(tuple(mask_logits.shape), dtype=torch.bool, device=dev),
            torch.zeros((0, 4), dtype=torch.float32, device=dev),
            torch.zeros((0,), dtype=torch.float32, device=dev),
            torch.zeros((0,), dtype=torch.bool, device=dev))
