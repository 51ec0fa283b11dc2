"""SAM refinement of a batch of teacher pseudo-instances inside the stage-2 detector.

The detector hands over normalised, padded teacher-view images and the kept
pseudo-instances (masks + logits in the teacher view). This module turns each view back
into the uint8 RGB image SAM expects and runs :class:`mmssis.sam.SamMaskRefiner` once per
image (one encode, one batched decode).

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
  (:attr:`PseudoLabelSamRefiner.class_enabled`, set by :class:`mmssis.engine.SamBenefitHook`
  from the calibration slice); refining before a measurement is an error.
"""
import copy
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import mmcv
import mmengine
from mmengine import fileio
import numpy as np
import torch
from mmdet.structures import SampleList
from mmengine.structures import InstanceData
from torch import Tensor

from mmssis.registry import MODELS
from mmssis.structures import (denormalize_views, masks_to_boxes, paired_mask_iou,
                               project_masks, sample_homography)


def view_normalization(data_preprocessor) -> Dict[str, Any]:
    """``mean`` / ``std`` / ``channels`` of a detector's preprocessed images, the keyword
    arguments of :func:`mmssis.structures.denormalize_views`.

    mmengine's ``ImgDataPreprocessor`` keeps whether it normalises and flips BGR -> RGB in
    private attributes only (``_enable_normalize``, ``_channel_conversion``); this is the one
    place in mmssis that reads them.

    Args:
        data_preprocessor: ``DetDataPreprocessor`` or ``MultiBranchDataPreprocessor``.
    """
    pre = getattr(data_preprocessor, 'data_preprocessor', data_preprocessor)
    normalised = bool(getattr(pre, '_enable_normalize', False))
    # mmcv loads BGR; the preprocessor flips to RGB only with bgr_to_rgb=True.
    rgb = bool(getattr(pre, '_channel_conversion', False))
    return dict(mean=pre.mean.flatten().tolist() if normalised else None,
                std=pre.std.flatten().tolist() if normalised else None,
                channels='rgb' if rgb else 'bgr')


def original_cache_key(img_path: str) -> str:
    """Embedding-cache key of an un-augmented image: its resolved absolute path.

    Relative paths depend on the working directory: two runs started from different
    directories could otherwise share a disk cache entry for different images.
    """
    return os.path.realpath(img_path)


@MODELS.register_module()
class PseudoLabelSamRefiner:
    """Batch adapter between :class:`SemiMaskDetector` and :class:`SamMaskRefiner`.

    Args:
        refiner: A :class:`mmssis.sam.SamMaskRefiner` or its config (backend,
            num_points, use_box, multimask, iou_thr, cache ...).
        embed_on: ``'original'`` or ``'view'`` (see module docstring).
        backend_args: ``mmengine.fileio`` backend of the original images (as the data
            set's ``backend_args``: S3, petrel, ...); read only on an embedding-cache miss.
        policy: ``'always'``, ``'measured'`` or ``'never'`` (see module docstring).
        view_extent: ``'content'`` or ``'canvas'`` (``embed_on='view'``; see module
            docstring).
    """

    POLICIES = ('always', 'measured', 'never')
    VIEW_EXTENTS = ('content', 'canvas')

    def __init__(self, refiner, embed_on: str = 'original',
                 backend_args: Optional[dict] = None, policy: str = 'always',
                 view_extent: str = 'content') -> None:
        if embed_on not in ('original', 'view'):
            raise ValueError(f"embed_on must be 'original' or 'view', got {embed_on!r}")
        if view_extent not in self.VIEW_EXTENTS:
            raise ValueError(f'view_extent must be one of {self.VIEW_EXTENTS}, got '
                             f'{view_extent!r}')
        if view_extent == 'canvas' and embed_on != 'view':
            raise ValueError("view_extent='canvas' needs embed_on='view' (the canvas is the "
                             'padded batch input of the teacher view)')
        self.view_extent = view_extent
        if policy not in self.POLICIES:
            raise ValueError(f'policy must be one of {self.POLICIES}, got {policy!r}')
        self.refiner = MODELS.build(refiner) if isinstance(refiner, dict) else refiner
        self.embed_on = embed_on
        self.backend_args = backend_args
        self.policy = policy
        #: Per class, whether its instances go to SAM under ``policy='measured'``
        #: (``None``: not measured yet).
        self.class_enabled: Optional[List[bool]] = None

    @property
    def replaces_always(self) -> bool:
        """Whether SAM's mask replaces the teacher's unconditionally (official S4M: also
        when it is empty, and small refined masks are not dropped), i.e. the wrapped
        refiner has ``empty_fallback=False``."""
        return not self.refiner.empty_fallback

    def ungated(self) -> 'PseudoLabelSamRefiner':
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
                "PseudoLabelSamRefiner(policy='measured') has no per-class decision yet: add "
                "SamBenefitHook to custom_hooks (it measures before the first iteration), or "
                "use policy='always' / 'never'")
        enabled = torch.as_tensor(self.class_enabled, dtype=torch.bool, device=labels.device)
        if labels.numel() and int(labels.max()) >= len(enabled):
            raise ValueError(f'class_enabled has {len(enabled)} classes, labels go up to '
                             f'{int(labels.max())}')
        return enabled[labels]

    def read_image(self, img_path: str) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB image at ``img_path`` through ``mmengine.fileio``."""
        return mmcv.imfrombytes(fileio.get(img_path, backend_args=self.backend_args),
                                channel_order='rgb')

    @torch.no_grad()
    def precompute(self, img_paths: Sequence[str], progress: bool = True) -> Dict[str, int]:
        """Encode original images into the embedding cache before training.

        The keys are the ones :meth:`refine_batch` looks up (:func:`original_cache_key`
        of ``img_path``), so with a disk
        cache (``cache=dict(disk_dir=...)``) training then never runs SAM's image encoder
        for these images, and several runs sharing the directory encode each image once.

        Args:
            img_paths: Image paths exactly as the data set gives them (``img_path``).
            progress: Show an mmengine progress bar.

        Returns:
            ``{'images': n, 'encoded': newly encoded, 'cached': already in the cache}``.

        Raises:
            ValueError: ``embed_on != 'original'`` (views change every step) or the
                refiner has no cache.
        """
        if self.embed_on != 'original':
            raise ValueError("precompute needs embed_on='original' (view embeddings depend "
                             'on the augmentation of each step)')
        cache = self.refiner.cache
        if cache is None:
            raise ValueError('precompute needs an embedding cache on the refiner '
                             '(refiner=dict(..., cache=dict(disk_dir=...)))')
        bar = mmengine.utils.ProgressBar(len(img_paths)) if progress else None
        encoded = 0
        for path in img_paths:
            key = original_cache_key(path)
            if self.refiner.backend.full_cache_key(key) not in cache:
                self.refiner.backend.encode_uncached(self.read_image(path), cache_key=key)
                encoded += 1
            if bar is not None:
                bar.update()
        return dict(images=len(img_paths), encoded=encoded, cached=len(img_paths) - encoded)

    @torch.no_grad()
    def refine_batch(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                     instances: List[InstanceData],
                     normalization: Optional[Dict[str, Any]] = None
                     ) -> Tuple[List[InstanceData], Dict[str, float]]:
        """Replace each instance's teacher mask with SAM's.

        Args:
            batch_inputs: (B, 3, H_pad, W_pad) normalised teacher-view images.
            batch_data_samples: Teacher-view samples (``img_shape``, ``img_path``,
                ``homography_matrix``, ``ori_shape``).
            instances: Per image, kept pseudo-instances with ``mask_logits`` and
                ``masks`` (N, h, w) at the teacher ``img_shape``, ``bboxes`` (N, 4).
            normalization: ``mean`` / ``std`` / ``channels`` of ``batch_inputs``
                (:func:`view_normalization`); needed with ``embed_on='view'``.

        Returns:
            The refined instances (new ``masks``; ``sam_iou`` = SAM's predicted IoU, NaN
            for instances the policy kept from SAM) and logging statistics: the share of
            instances sent to SAM (``unsup_sam_sent``, 1 under ``'always'``), mean IoU
            between teacher and refined masks of those, share of all instances whose mask
            came from SAM, and the embedding-cache hit rate.
        """
        self.refiner.backend.follow(batch_inputs.device)
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
                gen = self.refiner.point_generator(
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
        cache = self.refiner.cache
        if cache is not None:
            stats['sam_cache_hit_rate'] = float(cache.hit_rate)
        return out, stats

    def _view_key(self, sample, shape: Tuple[int, int]) -> Optional[str]:
        from mmssis.sam import make_cache_key
        meta = sample.metainfo
        return make_cache_key(meta.get('img_path', meta.get('img_id')),
                              (meta.get('homography_matrix'), tuple(shape)))

    def _refine_in_view(self, view: np.ndarray, sample, inst: InstanceData,
                        generator: torch.Generator):
        """Refine in the teacher view (its content, or the padded canvas it sits in at the
        top left: teacher logits are extended with background over the padding and SAM's
        masks cropped back to the content)."""
        h, w = sample.metainfo['img_shape'][:2]
        logits = inst.mask_logits
        if view.shape[:2] != (h, w):
            big_h, big_w = view.shape[:2]
            logits = logits.new_full((len(inst), big_h, big_w), -20.0)
            logits[:, :h, :w] = inst.mask_logits
        res = self.refiner.refine(view, logits, inst.bboxes,
                                  cache_key=self._view_key(sample, view.shape[:2]),
                                  generator=generator)
        return res.masks[:, :h, :w], res

    def _refine_in_original(self, sample, inst: InstanceData, generator: torch.Generator):
        """Embed the original image (read only on a cache miss); refine in its frame; warp
        masks back to the view."""
        meta = sample.metainfo
        key = original_cache_key(meta['img_path'])
        backend = self.refiner.backend
        emb = backend.cached(key, meta['ori_shape'])
        if emb is None:
            image = self.read_image(meta['img_path'])
            if tuple(image.shape[:2]) != tuple(meta['ori_shape'][:2]):
                raise ValueError(f"{meta['img_path']}: the image is {image.shape[:2]}, its "
                                 f"sample says ori_shape {tuple(meta['ori_shape'][:2])}")
            emb = backend.encode_uncached(image, cache_key=key)
        ori_h, ori_w = emb.original_size
        h_view = sample_homography(sample, inst.mask_logits.device)
        to_original = torch.linalg.inv(h_view)
        logits = project_masks(inst.mask_logits.float(), to_original, (ori_h, ori_w))
        # Pixels warped in from outside the view have logit 0; make them background.
        inside = project_masks(torch.ones_like(inst.mask_logits[:1], dtype=torch.bool),
                               to_original, (ori_h, ori_w), mode='nearest')
        logits = torch.where(inside.bool(), logits, torch.full_like(logits, -20.0))
        boxes = masks_to_boxes(logits > 0)
        res = self.refiner.refine_embedding(emb, logits, boxes, generator=generator)
        view_h, view_w = meta['img_shape'][:2]
        masks = project_masks(res.masks, h_view, (view_h, view_w)).bool()
        return masks, res
