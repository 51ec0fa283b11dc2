"""S4M online pseudo-mask refinement with a frozen SAM: the one SAM refiner.

For every teacher instance, ``num_points`` positive points are sampled inside the
teacher's (binarised) mask with probability ``softmax(mask logits)``; SAM is
prompted with these points (plus the teacher box when ``use_box`` or when the
backend is box-only), the multimask output with the highest predicted IoU is
kept, and (optionally) instances whose predicted IoU is below ``iou_thr`` keep
the teacher's mask. One image encode (cacheable) and one batched mask-decoder
call per image.

:class:`SamMaskRefiner` owns the backend, the embedding cache, the per-class policy and
its random points; the backend only encodes, decodes and gives decoder tokens. Inside the
stage-2 detector, :meth:`SamMaskRefiner.refine_batch` takes the normalised, padded
teacher-view batch and the kept pseudo-instances.

Two places to encode (``embed_on``):

* ``'view'``: the teacher view itself (resized/flipped). Exact, but the cache only hits
  when the same geometric view recurs. ``view_extent`` says which part of it SAM sees:
  ``'content'`` (mmssis default) the view's ``img_shape`` (SAM 2 stretches it to its square
  input), ``'canvas'`` (official S4M) the whole padded batch input at native scale (COCO:
  the 1024 x 1024 LSJ canvas, padding included); masks are cropped back to the content.
* ``'original'``: the un-augmented image read from ``img_path``. Teacher mask logits are
  warped into the original frame through ``inv(homography_matrix)``, refined there, and the
  refined masks warped back. With a cache, every image is encoded once for the whole run
  (hit rate -> 1 after the first epoch).

Which instances go to SAM (``policy``):

* ``'always'``: every kept pseudo-instance (S4M; the paper configs).
* ``'never'``: none (the teacher's masks pass through; SAM never runs).
* ``'measured'``: those of the classes where SAM was measured to help
  (:attr:`SamMaskRefiner.class_enabled`, set by :class:`mmssis.engine.SamBenefitHook`
  from the calibration slice); refining before a measurement is an error.
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Callable, Dict, Hashable, List, NamedTuple, Optional, Sequence, Tuple, Union

import mmcv
import mmengine
import numpy as np
import torch
from mmengine import fileio
from mmengine.structures import InstanceData
from torch import Tensor

from mmssis.registry import MODELS
from mmssis.structures import (denormalize_views, loosen_boxes, masks_to_boxes, paired_mask_iou,
                               project_masks, sample_homography)
from mmssis.utils.rank_seed import run_seed, torch_generator
from .base import ImageEmbedding, ImageLike, SamBackend, to_hwc_uint8_rgb
from .cache import build_embedding_cache, make_cache_key, original_cache_key
from .prompts import sample_points_from_logits

__all__ = ['SamMaskRefiner', 'RefinedInstances']


class RefinedInstances(NamedTuple):
    """Result of :meth:`SamMaskRefiner.refine` (unpackable as a tuple).

    Attributes:
        masks: ``(N, H, W)`` bool refined masks at image size.
        iou_pred: ``(N,)`` SAM's predicted IoU of the selected mask.
        from_sam: ``(N,)`` bool, False where the teacher mask was kept (IoU gate
            failed or SAM returned an empty mask).
        prompt_boxes: ``(N, 4)`` the teacher boxes given to :meth:`SamMaskRefiner.refine`
            (``None`` if none were).
    """

    masks: Tensor
    iou_pred: Tensor
    from_sam: Tensor
    prompt_boxes: Optional[Tensor] = None

    @property
    def boxes(self) -> Tensor:
        """``(N, 4)`` xyxy boxes of :attr:`masks` (exclusive max corner), computed on access
        (the stage-2 path never needs them); the given box for an empty mask."""
        return masks_to_boxes(self.masks, fallback=self.prompt_boxes)


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
        temperature: Softmax temperature of point sampling.
        seed: Seed of point sampling (``None``: the run's seed). Each call draws from a
            generator derived from ``(seed, step, rank, key)``
            (:func:`~mmssis.utils.rank_seed.torch_generator`): nothing carries over from one
            step to the next, so a resumed run draws what the uninterrupted one drew.
        cache: Optional embedding cache (an ``EmbeddingCache`` or its kwargs), consulted by
            :meth:`encode` / :meth:`refine_batch` for keyed images.
        min_teacher_iou: Keep the teacher mask when SAM's mask overlaps it with IoU below
            this (``None``/0 disables the gate). Guards against SAM "collapsing" onto a
            part or the background of a confident teacher instance, which a model
            trained on another domain (e.g. LiteMedSAM) does on some instances.
        fusion: How SAM's mask replaces the teacher's. ``'replace'`` (S4M): SAM's binary
            mask. ``'mean_prob'``: pixels where the mean of the teacher's and SAM's
            foreground probabilities is >= 0.5 -- the two vote with their confidence, so
            a pixel the teacher is unsure of follows SAM and vice versa (useful when SAM
            is a domain-shifted model, e.g. LiteMedSAM on natural images).
        point_region: Where points are drawn. ``'mask'`` (mmssis default): the softmax of
            the logits restricted to the teacher's binarised mask. ``'all'`` (official
            S4M): the softmax over all pixels of the instance's mask-logit map (points may
            then fall outside the teacher mask where its logits are close to 0).
        empty_fallback: ``True`` (mmssis default): where SAM's mask is empty the teacher's
            is kept. ``False`` (official S4M): SAM's mask replaces the teacher's even when
            it is empty.
        embed_on: ``'original'`` or ``'view'`` (:meth:`refine_batch`; module docstring).
        view_extent: ``'content'`` or ``'canvas'`` (``embed_on='view'``; module docstring).
        policy: ``'always'``, ``'measured'`` or ``'never'`` (module docstring).
        backend_args: ``mmengine.fileio`` backend of the original images (as the data
            set's ``backend_args``: S3, petrel, ...); read only on an embedding-cache miss.
        box_margin: Pixels (frame of the embedded image) added on each side of every
            prompt box, clamped to the image. ``0`` (official S4M): the teacher box as it
            is. MedSAM-family models were trained on boxes loosened by a few pixels, and a
            predicted box that is too tight cuts the object off (SAM keeps inside the box).
    """

    FUSIONS = ('replace', 'mean_prob')
    POLICIES = ('always', 'measured', 'never')
    VIEW_EXTENTS = ('content', 'canvas')

    def __init__(self, backend: Union[SamBackend, Dict[str, Any]], num_points: int = 3,
                 use_box: bool = False, multimask: bool = True,
                 iou_thr: Optional[float] = None, temperature: float = 1.0,
                 seed: Optional[int] = None, cache: Any = None,
                 min_teacher_iou: Optional[float] = None, fusion: str = 'replace',
                 point_region: str = 'mask', empty_fallback: bool = True,
                 embed_on: str = 'original', view_extent: str = 'content',
                 policy: str = 'always', backend_args: Optional[dict] = None,
                 box_margin: float = 0.0) -> None:
        if box_margin < 0:
            raise ValueError(f'box_margin must be >= 0 pixels, got {box_margin}')
        _check_choice('point_region', point_region, ('mask', 'all'))
        _check_choice('fusion', fusion, self.FUSIONS)
        _check_choice('embed_on', embed_on, ('original', 'view'))
        _check_choice('view_extent', view_extent, self.VIEW_EXTENTS)
        _check_choice('policy', policy, self.POLICIES)
        if view_extent == 'canvas' and embed_on != 'view':
            raise ValueError("view_extent='canvas' needs embed_on='view' (the canvas is the "
                             'padded batch input of the teacher view)')
        if isinstance(backend, dict):
            backend = MODELS.build(backend)
        if not isinstance(backend, SamBackend):
            raise TypeError(f'backend must be a SamBackend or its config, got {type(backend)}')
        self.backend = backend
        self.cache = build_embedding_cache(cache)
        self.num_points = int(num_points)
        self.use_box = bool(use_box)
        self.multimask = bool(multimask)
        self.iou_thr = iou_thr
        self.min_teacher_iou = min_teacher_iou
        self.temperature = float(temperature)
        self.fusion = fusion
        self.point_region = point_region
        self.empty_fallback = bool(empty_fallback)
        self.seed = run_seed() if seed is None else int(seed)
        self.embed_on = embed_on
        self.view_extent = view_extent
        self.policy = policy
        self.backend_args = backend_args
        self.box_margin = float(box_margin)
        #: Per class, whether its instances go to SAM under ``policy='measured'``
        #: (``None``: not measured yet).
        self.class_enabled: Optional[List[bool]] = None

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(backend={self.backend!r}, num_points={self.num_points}, '
                f'use_box={self.use_box}, multimask={self.multimask}, iou_thr={self.iou_thr}, '
                f'fusion={self.fusion!r}, point_region={self.point_region!r}, '
                f'embed_on={self.embed_on!r}, policy={self.policy!r}, '
                f'box_margin={self.box_margin:g})')

    def point_generator(self, *keys: Hashable) -> torch.Generator:
        """The point-sampling generator of this training step for ``keys`` (e.g. the image)."""
        return torch_generator(self.seed, 'sam_points', *keys)

    # ------------------------------------------------------------- policy
    @property
    def replaces_always(self) -> bool:
        """Whether SAM's mask replaces the teacher's unconditionally (official S4M: also
        when it is empty, and small refined masks are not dropped): ``empty_fallback=False``."""
        return not self.empty_fallback

    def ungated(self) -> 'SamMaskRefiner':
        """A shallow copy (same SAM, cache and point streams) that refines every instance: what
        measuring SAM's benefit compares against the teacher, whatever the policy."""
        out = copy.copy(self)
        out.policy, out.class_enabled = 'always', None
        return out

    def set_class_enabled(self, enabled: Optional[Sequence[bool]]) -> None:
        """Set :attr:`class_enabled` (``(C,)`` bools, or ``None`` to forget it)."""
        self.class_enabled = None if enabled is None else [bool(e) for e in enabled]

    def refines(self, labels: Tensor) -> Tensor:
        """``(N,)`` bool: which instances of classes ``labels`` (N,) go to SAM.

        Raises:
            RuntimeError: ``policy='measured'`` before any measurement.
        """
        if self.policy == 'always':
            return torch.ones_like(labels, dtype=torch.bool)
        if self.policy == 'never':
            return torch.zeros_like(labels, dtype=torch.bool)
        if self.class_enabled is None:
            raise RuntimeError(
                "SamMaskRefiner(policy='measured') has no per-class decision yet: add "
                "SamBenefitHook to custom_hooks (it measures before the first iteration), or "
                "use policy='always' / 'never'")
        enabled = torch.as_tensor(self.class_enabled, dtype=torch.bool, device=labels.device)
        if labels.numel() and int(labels.max()) >= len(enabled):
            raise ValueError(f'class_enabled has {len(enabled)} classes, labels go up to '
                             f'{int(labels.max())}')
        return enabled[labels]

    # -------------------------------------------------------- embeddings
    def _full_key(self, cache_key: Hashable) -> str:
        """The cache entry of ``cache_key`` (namespaced by the model's weights)."""
        return f'{self.backend.cache_namespace}|{cache_key}'

    def in_cache(self, cache_key: Hashable) -> bool:
        """Whether the cache holds an embedding under ``cache_key``."""
        return self.cache is not None and self._full_key(cache_key) in self.cache

    @torch.no_grad()
    def embed(self, cache_key: Optional[Hashable], size: Tuple[int, int],
              load: Callable[[], np.ndarray]) -> ImageEmbedding:
        """The embedding of an image: from the cache, or ``load()`` and encode (and store).

        Args:
            cache_key: Identifies the pixels (``None``: no caching), see ``make_cache_key``.
            size: ``(H, W)`` the image has (e.g. the sample's ``ori_shape``).
            load: Returns the ``(H, W, 3)`` uint8 RGB image; called only on a miss.

        Raises:
            ValueError: The cached entry, or the loaded image, is of another size than
                ``size`` (a file changed since it was cached / a wrong annotation).
        """
        size = tuple(int(v) for v in size[:2])
        full = self._full_key(cache_key) if cache_key is not None else None
        if self.cache is not None and full is not None:
            emb = self.cache.get(full)
            if emb is not None:
                if emb.original_size != size:
                    raise ValueError(
                        f'SAM embedding cache: the entry of {cache_key} is of a '
                        f'{emb.original_size} image, the image is {size} now; delete the '
                        'stale cache (directory) or use a new one')
                return emb.to(self.backend.device)
        image = load()
        if tuple(image.shape[:2]) != size:
            raise ValueError(f'{cache_key}: the image is {tuple(image.shape[:2])}, its sample '
                             f'says {size}')
        return self._encode_into_cache(cache_key, image)

    def _encode_into_cache(self, cache_key: Optional[Hashable], image: np.ndarray
                           ) -> ImageEmbedding:
        emb = self.backend.encode(image)
        if self.cache is not None and cache_key is not None:
            self.cache.put(self._full_key(cache_key), emb)
        return emb

    def encode(self, image: ImageLike, cache_key: Optional[Hashable] = None,
               channel_order: str = 'rgb') -> ImageEmbedding:
        """``backend.encode`` through the cache (when ``cache_key`` is given)."""
        rgb = to_hwc_uint8_rgb(image, channel_order)
        return self.embed(cache_key, rgb.shape[:2], lambda: rgb)

    def read_image(self, img_path: str) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB image at ``img_path`` through ``mmengine.fileio``."""
        return mmcv.imfrombytes(fileio.get(img_path, backend_args=self.backend_args),
                                channel_order='rgb')

    @torch.no_grad()
    def precompute(self, img_paths: Sequence[str], progress: bool = True) -> Dict[str, int]:
        """Encode original images into the embedding cache before training.

        The keys are the ones :meth:`refine_batch` looks up (``original_cache_key`` of
        ``img_path``), so with a disk cache (``cache=dict(disk_dir=...)``) training then
        never runs SAM's image encoder for these images, and several runs sharing the
        directory encode each image once.

        Args:
            img_paths: Image paths exactly as the data set gives them (``img_path``).
            progress: Show an mmengine progress bar.

        Returns:
            ``{'images': n, 'encoded': newly encoded, 'cached': already in the cache}``.

        Raises:
            ValueError: ``embed_on != 'original'`` (views change every step) or no cache.
        """
        if self.embed_on != 'original':
            raise ValueError("precompute needs embed_on='original' (view embeddings depend "
                             'on the augmentation of each step)')
        if self.cache is None:
            raise ValueError('precompute needs an embedding cache on the refiner '
                             '(sam_refiner=dict(..., cache=dict(disk_dir=...)))')
        bar = mmengine.utils.ProgressBar(len(img_paths)) if progress else None
        encoded = 0
        for path in img_paths:
            key = original_cache_key(path)
            if not self.in_cache(key):
                self._encode_into_cache(key, self.read_image(path))
                encoded += 1
            if bar is not None:
                bar.update()
        return dict(images=len(img_paths), encoded=encoded, cached=len(img_paths) - encoded)

    # ------------------------------------------------------------ one image
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
        if int(mask_logits.shape[0]) == 0:  # nothing to refine: skip the encoder as well
            return self._empty(mask_logits)
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
            return self._empty(mask_logits)
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
            if self.box_margin:
                prompt_boxes = loosen_boxes(prompt_boxes, self.box_margin, emb.original_size)
        low_res, iou = self.backend.predict_low_res(
            emb, boxes=prompt_boxes, points=points if self.num_points > 0 else None,
            point_labels=labels if self.num_points > 0 else None, multimask=self.multimask)
        best = iou.argmax(dim=1)
        ar = torch.arange(n, device=iou.device)
        iou_best = iou[ar, best].to(out_dev)
        logits_best = self.backend.postprocess_masks(emb, low_res[ar, best][:, None])[:, 0]
        logits_best = logits_best.to(out_dev)
        if self.fusion == 'mean_prob':
            # Both are logits (SAM's threshold is its mask_threshold, 0 for SAM).
            sam_prob = torch.sigmoid(logits_best - self.backend.mask_threshold)
            sam_masks = (sam_prob + torch.sigmoid(mask_logits.float())) >= 1.0
        else:
            sam_masks = logits_best > self.backend.mask_threshold
        from_sam = sam_masks.flatten(1).any(dim=1) if self.empty_fallback else \
            torch.ones(n, dtype=torch.bool, device=out_dev)
        if self.iou_thr:
            from_sam &= iou_best >= self.iou_thr
        if self.min_teacher_iou:
            from_sam &= paired_mask_iou(sam_masks, teacher) >= self.min_teacher_iou
        masks = torch.where(from_sam[:, None, None], sam_masks, teacher)
        return RefinedInstances(masks, iou_best, from_sam, boxes)

    @staticmethod
    def _empty(mask_logits: Tensor) -> RefinedInstances:
        dev = mask_logits.device
        return RefinedInstances(
            torch.zeros(tuple(mask_logits.shape), dtype=torch.bool, device=dev),
            torch.zeros((0,), dtype=torch.float32, device=dev),
            torch.zeros((0,), dtype=torch.bool, device=dev))

    # -------------------------------------------------- a detector's batch
    @torch.no_grad()
    def refine_batch(self, batch_inputs: Tensor, batch_data_samples: Sequence,
                     instances: List[InstanceData],
                     normalization: Optional[Dict[str, Any]] = None
                     ) -> Tuple[List[InstanceData], Dict[str, float]]:
        """Replace each kept pseudo-instance's teacher mask with SAM's.

        Args:
            batch_inputs: (B, 3, H_pad, W_pad) normalised teacher-view images.
            batch_data_samples: Teacher-view samples (``img_shape``, ``img_path``,
                ``homography_matrix``, ``ori_shape``).
            instances: Per image, kept pseudo-instances with ``labels``, ``mask_logits``
                and bool ``masks`` (N, h, w) at the teacher ``img_shape``.
            normalization: ``mean`` / ``std`` / ``channels`` of ``batch_inputs``
                (``mmssis.models.utils.view_normalization``); needed with
                ``embed_on='view'``.

        Returns:
            The refined instances (new ``masks``; ``sam_iou`` = SAM's predicted IoU, NaN
            for instances the policy kept from SAM) and logging statistics: the share of
            instances sent to SAM (``unsup_sam_sent``, not logged under ``'always'``), mean
            IoU between teacher and refined masks of those, share of all instances whose
            mask came from SAM, and the embedding-cache hit rate.
        """
        self.backend.follow(batch_inputs.device)
        views = None
        if self.embed_on == 'view':
            if normalization is None:
                raise ValueError("embed_on='view' needs the inputs' normalization")
            canvas = self.view_extent == 'canvas'
            shapes = [tuple(batch_inputs.shape[-2:]) if canvas else s.metainfo['img_shape']
                      for s in batch_data_samples]
            views = denormalize_views(batch_inputs, shapes, **normalization)
        ious, used, sent, out = [], [], [], []
        for i, (sample, inst) in enumerate(zip(batch_data_samples, instances)):
            if len(inst) == 0:
                out.append(inst)
                continue
            sel = self.refines(inst.labels)
            sent.append(sel.float())
            inst = inst.clone()
            # instances the policy keeps from SAM: teacher mask, no SAM IoU
            sam_iou = torch.full((len(inst), ), float('nan'), device=inst.masks.device)
            from_sam = torch.zeros(len(inst), device=inst.masks.device)
            if sel.any():  # else no encode: nothing of this image goes to SAM
                part = inst[sel]
                # points: a function of (seed, step, rank, image), not of earlier draws
                gen = self.point_generator(
                    sample.metainfo.get('img_path', sample.metainfo.get('img_id')), i)
                if self.embed_on == 'view':
                    masks, res = self._refine_in_view(views[i], sample, part, gen)
                else:
                    masks, res = self._refine_in_original(sample, part, gen)
                ious.append(paired_mask_iou(part.masks, masks))
                inst.masks = inst.masks.clone()
                inst.masks[sel] = masks.to(inst.masks.dtype)
                sam_iou[sel] = res.iou_pred.to(sam_iou.dtype)
                from_sam[sel] = res.from_sam.float()
            inst.sam_iou = sam_iou
            used.append(from_sam)
            out.append(inst)
        stats = {
            'unsup_sam_teacher_iou': float(torch.cat(ious).mean()) if ious else 0.0,
            'unsup_sam_used': float(torch.cat(used).mean()) if used else 0.0,
        }
        if self.policy != 'always':
            stats['unsup_sam_sent'] = float(torch.cat(sent).mean()) if sent else 0.0
        if self.cache is not None:
            stats['sam_cache_hit_rate'] = float(self.cache.hit_rate)
        return out, stats

    def _refine_in_view(self, view: np.ndarray, sample, inst: InstanceData,
                        generator: torch.Generator) -> Tuple[Tensor, RefinedInstances]:
        """Refine in the teacher view (its content, or the padded canvas it sits in at the
        top left: teacher logits are extended with background over the padding and SAM's
        masks cropped back to the content)."""
        h, w = sample.metainfo['img_shape'][:2]
        logits = inst.mask_logits
        if view.shape[:2] != (h, w):
            big_h, big_w = view.shape[:2]
            logits = logits.new_full((len(inst), big_h, big_w), -20.0)
            logits[:, :h, :w] = inst.mask_logits
        meta = sample.metainfo
        key = make_cache_key(meta.get('img_path', meta.get('img_id')),
                             (meta.get('homography_matrix'), tuple(view.shape[:2])))
        emb = self.embed(key, view.shape[:2], lambda: view)
        # the prompt boxes: the one box computation of SAM's side
        res = self.refine_embedding(emb, logits, masks_to_boxes(inst.masks),
                                    generator=generator)
        return res.masks[:, :h, :w], res

    def _refine_in_original(self, sample, inst: InstanceData, generator: torch.Generator
                            ) -> Tuple[Tensor, RefinedInstances]:
        """Embed the original image (read only on a cache miss); refine in its frame; warp
        masks back to the view."""
        meta = sample.metainfo
        emb = self.embed(original_cache_key(meta['img_path']), meta['ori_shape'],
                         lambda: self.read_image(meta['img_path']))
        ori_h, ori_w = emb.original_size
        h_view = sample_homography(sample, inst.mask_logits.device)
        to_original = torch.linalg.inv(h_view)
        logits = project_masks(inst.mask_logits.float(), to_original, (ori_h, ori_w))
        # Pixels warped in from outside the view have logit 0; make them background.
        inside = project_masks(torch.ones_like(inst.mask_logits[:1], dtype=torch.bool),
                               to_original, (ori_h, ori_w), mode='nearest')
        logits = torch.where(inside.bool(), logits, torch.full_like(logits, -20.0))
        # the prompt boxes: the one box computation of SAM's side
        res = self.refine_embedding(emb, logits, masks_to_boxes(logits > 0),
                                    generator=generator)
        view_h, view_w = meta['img_shape'][:2]
        masks = project_masks(res.masks, h_view, (view_h, view_w)).bool()
        return masks, res


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)}, got {value!r}')


@MODELS.register_module(name='PseudoLabelSamRefiner')
def _nested_refiner_config(refiner: Dict[str, Any], **kwargs) -> SamMaskRefiner:
    """Configs written before the two refiner classes became one:
    ``PseudoLabelSamRefiner(refiner=dict(type='SamMaskRefiner', ...), embed_on=...)``."""
    warnings.warn("PseudoLabelSamRefiner(refiner=dict(...), ...) is now one "
                  "SamMaskRefiner(...): move the keys of 'refiner' up into sam_refiner",
                  DeprecationWarning)
    cfg = dict(refiner)
    cfg.pop('type', None)
    return SamMaskRefiner(**cfg, **kwargs)
