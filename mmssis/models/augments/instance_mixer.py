"""ARP (Augmentation with Refined Pseudo-labels): batch-level instance mixing for S4M.

After the teacher's (SAM-refined) pseudo-instances are projected into the student view,
pairs of unlabelled images of the student batch swap their large pseudo-instances: each
instance is copied (pixels under its mask), rescaled and shifted onto the partner image,
and the partner's own instances lose the pixels it now covers. The student thus sees
refined pseudo-masks in new contexts and with realistic occlusions.

Coordinate frame and domain:

* Images are the student batch tensor ``(B, 3, H_pad, W_pad)`` *after* the data
  preprocessor, i.e. normalised ``(img - mean) / std``. All images of a batch share the
  same normalisation, so copying normalised values is the same as copying raw pixels and
  normalising afterwards; no de-normalisation is needed for pasting.
* Masks are the ``gt_instances.masks`` of each student sample (``BitmapMasks`` or an
  ``(N, H_m, W_m)`` tensor) at the student ``img_shape`` or padded to
  ``batch_input_shape`` (Mask2Former students); whatever size they have is kept. Pixel
  ``(row i, col j)`` is the square ``[j, j + 1) x [i, i + 1)`` (see
  :mod:`mmssis.structures`); boxes (when the instances carry them) are recomputed from
  masks with :func:`masks_to_boxes` (``x2 = last column + 1``).
* Pasted content is confined to the destination's ``img_shape`` (never into padding).
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmdet.structures import SampleList
from mmdet.structures.bbox import BaseBoxes
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData
from torch import Tensor

from mmssis.structures import as_bool_masks, masks_to_boxes
from mmssis.registry import MODELS
from mmssis.utils.rank_seed import numpy_generator, run_seed


class ARPLayoutError(ValueError):
    """The per-GPU unlabelled batch makes ARP a no-op or makes it mix every image."""




class MixResult(NamedTuple):
    """Output of :class:`ARPInstanceMixer`.

    Attributes:
        inputs: ``(B, 3, H_pad, W_pad)`` student images after mixing.
        samples: ``B`` samples; mixed ones are new samples with new ``gt_instances``.
        stats: ``arp_pairs`` (image pairs mixed), ``arp_pasted`` (instances pasted and
            kept), ``arp_dropped`` (destination instances occluded away).
    """
    inputs: Tensor
    samples: SampleList
    stats: Dict[str, int]


class PasteResult(NamedTuple):
    """Output of :func:`paste_instances`.

    Attributes:
        img: ``(3, H, W)`` destination image with the instances pasted (a new tensor).
        dst_masks: ``(N_d', H_m, W_m)`` bool, the kept destination masks after occlusion.
        dst_keep: ``(N_d,)`` bool, which destination instances were kept.
        pasted_masks: ``(N_p, H_m, W_m)`` bool, masks of the kept pasted instances in
            the destination frame (after occlusion by instances pasted later).
        pasted_keep: ``(N_s,)`` bool, which source instances were pasted and kept.
    """
    img: Tensor
    dst_masks: Tensor
    dst_keep: Tensor
    pasted_masks: Tensor
    pasted_keep: Tensor


def scaled_size(height: int, width: int, scale: float) -> Tuple[int, int]:
    """Size ``(h, w)`` of an ``height x width`` box rescaled by ``scale`` (at least 1 px)."""
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def _nearest_index(src_len: int, dst_len: int, device: torch.device) -> Tensor:
    """Source index of each of ``dst_len`` output pixels, half-pixel nearest neighbour.

    Output pixel ``k`` (centre ``k + 0.5``) samples source coordinate
    ``(k + 0.5) * src_len / dst_len``, i.e. source pixel ``floor`` of it (as
    ``F.interpolate(mode='nearest-exact')``); a scale of 1 is the identity.
    """
    idx = torch.floor((torch.arange(dst_len, device=device, dtype=torch.float64) + 0.5) *
                      (src_len / dst_len)).long()
    return idx.clamp_(0, src_len - 1)


def paste_instances(dst_img: Tensor,
                    dst_masks: Tensor,
                    src_img: Tensor,
                    src_masks: Tensor,
                    scales: Optional[Sequence[float]] = None,
                    offsets: Optional[Sequence[Tuple[int, int]]] = None,
                    valid_shape: Optional[Tuple[int, int]] = None,
                    min_kept_area: int = 1,
                    exclusive_dst: bool = False,
                    src_boxes: Optional[Sequence[Sequence[float]]] = None) -> PasteResult:
    """Paste source instances (pixels under their masks) onto a destination image.

    Each source instance is cut out along its tight box, rescaled by ``scales[k]`` with
    half-pixel nearest-neighbour sampling (image and mask share the sampling, so every
    pasted pixel is a real source pixel from under the source mask: no source background
    bleeds into the object border), and placed with the rescaled box's top-left corner at
    ``offsets[k] = (x, y)`` in the destination frame. Parts falling outside
    ``valid_shape`` are clipped; an instance whose visible mask is smaller than
    ``min_kept_area`` is not pasted at all. Instances are pasted in the given order, each
    on top of the previous ones.

    Occlusion: destination masks and earlier pasted masks lose the pixels covered by later
    pasted masks. A destination instance that lost pixels and is left with fewer than
    ``min_kept_area`` (at least 1) pixels is dropped; untouched instances are always kept.
    Pasted instances occluded below that area are dropped too (their remaining pixels stay
    in the image, like those of dropped destination instances). With ``exclusive_dst`` the
    destination's own masks also become mutually exclusive, a later one (higher index)
    keeping a pixel two of them share, as the official S4M code does with every mask of an
    image that receives instances.

    Args:
        dst_img: ``(3, H, W)`` destination image (any dtype/domain, e.g. normalised).
        dst_masks: ``(N_d, H_m, W_m)`` destination masks (nonzero = foreground).
        src_img: ``(3, H_s, W_s)`` source image in the same domain as ``dst_img``.
        src_masks: ``(N_s, H_ms, W_ms)`` masks of the instances to paste, in the source
            frame; parts outside ``src_img`` are ignored.
        scales: ``N_s`` scale factors. Defaults to 1.
        offsets: ``N_s`` integer ``(x, y)`` top-left corners of the rescaled boxes in the
            destination frame (may be negative). Defaults to the source box corners.
        valid_shape: ``(h, w)`` destination region that may receive pixels (its
            ``img_shape``). Defaults to the whole image; always clipped to the image and
            mask sizes.
        min_kept_area: Smallest mask area (px) of an occluded or pasted instance to keep.
        exclusive_dst: Make the destination masks mutually exclusive (later on top).
        src_boxes: ``N_s`` xyxy boxes of ``src_masks`` (:func:`masks_to_boxes`) when the
            caller has them; computed otherwise.

    Returns:
        PasteResult: new image and masks (bool, on ``dst_masks``' device) plus keep flags.
    """
    num_src = int(src_masks.shape[0])
    scales = [1.0] * num_src if scales is None else [float(s) for s in scales]
    min_kept_area = max(1, int(min_kept_area))
    mask_dev = dst_masks.device
    dst_masks = dst_masks != 0
    h_m, w_m = dst_masks.shape[-2:]
    valid_h, valid_w = valid_shape if valid_shape is not None else dst_img.shape[-2:]
    valid_h = min(int(valid_h), dst_img.shape[-2], h_m)
    valid_w = min(int(valid_w), dst_img.shape[-1], w_m)
    src_masks = (src_masks != 0)[:, :src_img.shape[-2], :src_img.shape[-1]]
    boxes = [[int(v) for v in b] for b in
             (masks_to_boxes(src_masks).long().tolist() if src_boxes is None else src_boxes)]
    if offsets is None:
        offsets = [(x1, y1) for x1, y1, _, _ in boxes]
    if len(scales) != num_src or len(offsets) != num_src:
        raise ValueError('need one scale and one offset per source instance')

    img = dst_img.clone()
    canvases: List[Tensor] = []
    pasted_idx: List[int] = []
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        if x2 <= x1 or y2 <= y1:
            continue  # empty mask
        hs, ws = scaled_size(y2 - y1, x2 - x1, scales[k])
        iy = _nearest_index(y2 - y1, hs, src_masks.device) + y1
        ix = _nearest_index(x2 - x1, ws, src_masks.device) + x1
        ox, oy = int(offsets[k][0]), int(offsets[k][1])
        # Visible window of the rescaled box inside the destination's valid region.
        dy0, dy1 = max(0, -oy), min(hs, valid_h - oy)
        dx0, dx1 = max(0, -ox), min(ws, valid_w - ox)
        if dy1 <= dy0 or dx1 <= dx0:
            continue
        iy, ix = iy[dy0:dy1], ix[dx0:dx1]
        mask = src_masks[k][iy][:, ix]
        if int(mask.sum()) < min_kept_area:
            continue
        patch = src_img[:, iy.to(src_img.device)][:, :, ix.to(src_img.device)]
        ys, xs = slice(oy + dy0, oy + dy1), slice(ox + dx0, ox + dx1)
        img[:, ys, xs] = torch.where(mask.to(img.device), patch.to(img), img[:, ys, xs])
        canvas = torch.zeros((h_m, w_m), dtype=torch.bool, device=mask_dev)
        canvas[ys, xs] = mask.to(mask_dev)
        canvases.append(canvas)
        pasted_idx.append(k)

    # Later pastes lie on top: walk backwards accumulating what is covered from above.
    cover = torch.zeros((h_m, w_m), dtype=torch.bool, device=mask_dev)
    pasted = [None] * len(canvases)
    for n in range(len(canvases) - 1, -1, -1):
        pasted[n] = canvases[n] & ~cover
        cover |= canvases[n]
    pasted_keep = torch.zeros(num_src, dtype=torch.bool)
    kept_pasted = []
    for k, m in zip(pasted_idx, pasted):
        if int(m.sum()) >= min_kept_area:
            pasted_keep[k] = True
            kept_pasted.append(m)
    pasted_masks = (torch.stack(kept_pasted) if kept_pasted else
                    torch.zeros((0, h_m, w_m), dtype=torch.bool, device=mask_dev))

    occluded = dst_masks & ~cover
    if exclusive_dst:
        above = torch.zeros((h_m, w_m), dtype=torch.bool, device=mask_dev)
        for n in range(occluded.shape[0] - 1, -1, -1):
            row = occluded[n] & ~above
            above |= occluded[n]
            occluded[n] = row
    area_before = dst_masks.flatten(1).sum(1)
    area_after = occluded.flatten(1).sum(1)
    dst_keep = (area_after == area_before) | (area_after >= min_kept_area)
    return PasteResult(img, occluded[dst_keep], dst_keep.cpu(), pasted_masks, pasted_keep)


def _masks_tensor(inst: InstanceData, fallback_shape: Tuple[int, int],
                  device: torch.device) -> Tensor:
    """``(N, H_m, W_m)`` bool tensor of ``inst.masks`` (a tensor stays on its device;
    ``BitmapMasks`` go to ``device``)."""
    if 'masks' not in inst:
        return torch.zeros((len(inst), *fallback_shape), dtype=torch.bool, device=device)
    masks = inst.masks
    if isinstance(masks, Tensor):
        return masks != 0
    return as_bool_masks(masks, device)


def _like_masks(template, masks: Tensor):
    """``masks`` (bool, (N, H, W)) in the container type/dtype/device of ``template``."""
    if isinstance(template, BitmapMasks) or template is None:
        return BitmapMasks(masks.cpu().numpy().astype(np.uint8), *masks.shape[1:])
    return masks.to(device=template.device, dtype=template.dtype)


@MODELS.register_module()
class ARPInstanceMixer:
    """S4M's ARP: swap large pseudo-instances between random pairs of student images.

    A plain object (no parameters, stays out of ``state_dict``/EMA/optimiser), called by
    :class:`SemiMaskDetector` on the unlabelled student batch after pseudo-label
    projection.

    Per call (with probability ``prob``): ``num_pairs`` disjoint pairs ``(i, j)`` of
    distinct images are drawn; every instance of ``i`` with mask area ``>= min_area`` is
    pasted onto ``j`` and vice versa, always from the *original* (pre-mix) images and
    masks so the two directions do not compound. Instances are pasted in ``paste_order``
    (each on top of the previous ones). Each gets a random scale from ``scale_range``
    and keeps its relative position in the image (``img_shape``-normalised box centre)
    shifted by a random translation of up to ``max_translate`` of the destination size;
    the placement is then clamped so the rescaled box lies inside the destination
    ``img_shape`` (a box larger than the image is centred and clipped). See
    :func:`paste_instances` for occlusion and dropping. Boxes are recomputed from the
    masks; labels, scores and every other per-instance field present in both images are
    carried along (fields present in only one are dropped).

    Args:
        num_pairs: Pairs per batch: ``None`` -> ``max(1, B // 4)``; an ``int`` count; a
            ``float`` in (0, 1] -> ``max(1, int(fraction * B))``. Capped at ``B // 2``.
        min_area: Smallest mask area (px) of an instance to paste (3000 at COCO scale;
            scale it down with the image size).
        scale_range: Range of the uniform random scale of pasted instances.
        max_translate: Largest random shift, as a fraction of the destination image size.
        prob: Probability of mixing a batch at all.
        placement: Where a pasted instance goes. ``'relative'`` (mmssis default): its
            relative position in the source, shifted by up to ``max_translate``;
            ``'uniform'`` (official S4M, COCO): the rescaled box's top-left corner uniform
            over all positions that keep it inside the destination; ``'static'`` (official
            S4M, Cityscapes ``--aug_static``): same position and scale as in the source
            (``scale_range`` and ``max_translate`` are ignored).
        min_kept_area: Occluded/pasted instances left with fewer pixels are dropped
            (default 5, as ``SemiMaskDetector``'s ``min_mask_area``; the official code drops
            only masks left empty, i.e. 1); instances the mixing did not touch are always
            kept.
        paste_order: ``'largest_first'`` (mmssis default: small instances end up on top
            and stay visible) or ``'instance'`` (official S4M: the source's instance order,
            a later instance on top of an earlier one).
        occlusion: ``'pasted'`` (mmssis default): pasted instances occlude the
            destination's masks, which otherwise keep their overlaps; ``'exclusive'``
            (official S4M): in an image that receives instances every mask becomes
            mutually exclusive, pasted ones on top, then later ones on top of earlier ones.
        seed: Seed of the mixing draws (``None``: the run's seed). Each call draws from a
            generator derived from ``(seed, step, rank)``
            (:func:`~mmssis.utils.rank_seed.numpy_generator`), so nothing carries over
            from one step to the next and a resumed run mixes what the uninterrupted one
            mixed.
    """

    PLACEMENTS = ('relative', 'uniform', 'static')
    PASTE_ORDERS = ('largest_first', 'instance')
    OCCLUSIONS = ('pasted', 'exclusive')

    def __init__(self,
                 num_pairs: Optional[Union[int, float]] = None,
                 min_area: float = 3000,
                 scale_range: Tuple[float, float] = (0.8, 1.2),
                 max_translate: float = 0.2,
                 prob: float = 1.0,
                 placement: str = 'relative',
                 min_kept_area: int = 5,
                 seed: Optional[int] = None,
                 paste_order: str = 'largest_first',
                 occlusion: str = 'pasted') -> None:
        if num_pairs is not None:
            if isinstance(num_pairs, bool) or num_pairs <= 0 or (
                    isinstance(num_pairs, float) and num_pairs > 1):
                raise ValueError(f'num_pairs must be a positive int or a fraction in (0, 1], '
                                 f'got {num_pairs!r}')
        lo, hi = (float(s) for s in scale_range)
        if not 0 < lo <= hi:
            raise ValueError(f'scale_range must satisfy 0 < lo <= hi, got {scale_range}')
        if placement not in self.PLACEMENTS:
            raise ValueError(f'placement must be one of {self.PLACEMENTS}, got {placement!r}')
        self.placement = placement
        if paste_order not in self.PASTE_ORDERS:
            raise ValueError(f'paste_order must be one of {self.PASTE_ORDERS}, got '
                             f'{paste_order!r}')
        if occlusion not in self.OCCLUSIONS:
            raise ValueError(f'occlusion must be one of {self.OCCLUSIONS}, got {occlusion!r}')
        self.paste_order = paste_order
        self.occlusion = occlusion
        if max_translate < 0 or not 0 <= prob <= 1:
            raise ValueError('max_translate must be >= 0 and prob in [0, 1]')
        self.num_pairs = num_pairs
        self.min_area = float(min_area)
        self.scale_range = (lo, hi)
        self.max_translate = float(max_translate)
        self.prob = float(prob)
        self.min_kept_area = int(min_kept_area)
        self.seed = run_seed() if seed is None else int(seed)

    @property
    def rng(self) -> np.random.Generator:
        """The generator of the current training step (a fresh one at each access)."""
        return numpy_generator(self.seed, 'arp')

    def pairs_for(self, batch_size: int) -> int:
        """Number of image pairs mixed in a batch of ``batch_size`` images."""
        if batch_size < 2:
            return 0
        if self.num_pairs is None:
            num = batch_size // 4
        elif isinstance(self.num_pairs, float):
            num = int(self.num_pairs * batch_size)
        else:
            num = int(self.num_pairs)
        return min(max(1, num), batch_size // 2)

    def mixing_share(self, batch_size: int) -> float:
        """Share of a ``batch_size``-image unlabelled batch that ARP mixes (0 to 1)."""
        return 2 * self.pairs_for(batch_size) / batch_size if batch_size > 0 else 0.0

    def check_layout(self, batch_size: int) -> float:
        """Refuse an unlabelled per-GPU batch on which ARP does nothing or mixes everything.

        The official code asserts more than 2 unlabelled images per process and mixes
        ``max(1, B // 4)`` pairs of them; with 1 image ARP would be a no-op, with 2 (and
        the default pair rule) every image would be mixed and none seen unmixed.

        Args:
            batch_size: Unlabelled images per GPU (the sampler's share of the batch).

        Returns:
            The mixing share (between 0 and 1, exclusive).

        Raises:
            ARPLayoutError: Naming the batch, the share and the layouts that work.
        """
        share = self.mixing_share(batch_size)
        fix = ('Use at least 3 unlabelled images per GPU: the official layouts are '
               '3 + 3 per GPU on COCO (ARP mixes 2 of 3) and 4 + 4 per GPU on Cityscapes '
               '(2 of 4), e.g. train_dataloader.batch_size=6 with sampler source_ratio=[3, 3]'
               ' (set auto_scale_lr.base_batch_size / the learning rate for the new global '
               'batch), or remove instance_mixer.')
        if share == 0:
            raise ARPLayoutError(
                f'ARP (instance_mixer) cannot mix with {batch_size} unlabelled image(s) per '
                f'GPU: it would be a no-op for the whole run. {fix}')
        if share >= 1 and self.num_pairs is None:
            raise ARPLayoutError(
                f'ARP (instance_mixer) would mix every unlabelled image with {batch_size} '
                f'per GPU (max(1, B // 4) = {self.pairs_for(batch_size)} pair(s)); the '
                f'official code refuses B <= 2 and leaves a share unmixed. {fix} To mix every'
                f' image on purpose, set instance_mixer.num_pairs explicitly.')
        return share

    # ------------------------------------------------------------------------------
    def __call__(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                 rng: Optional[np.random.Generator] = None) -> MixResult:
        """Mix instances between random image pairs of the student batch.

        Args:
            batch_inputs: ``(B, C, H_pad, W_pad)`` normalised student images (any channel
                count: the draws depend on the masks only, and every channel of a pasted
                pixel comes from the same source pixel).
            batch_data_samples: ``B`` samples with ``img_shape`` and ``gt_instances``
                (``masks``, ``labels``, optionally ``scores`` and ``bboxes`` xyxy: with
                them the mixed instances get the boxes of their new masks).
            rng: The draws (pairs, scales, shifts); default: the training step's
                generator (:attr:`rng`). An evaluation that mixes several batches outside
                training passes its own.

        Returns:
            A :class:`MixResult`: a new image tensor and a new list in which the mixed
            samples are shallow copies with new ``gt_instances`` (the caller's tensor,
            samples and instances are not modified; unmixed calls return the inputs), and
            the counts ``arp_pairs`` / ``arp_pasted`` / ``arp_dropped``.
        """
        stats = dict(arp_pairs=0, arp_pasted=0, arp_dropped=0)
        batch_size = len(batch_data_samples)
        if batch_size < 2:
            self.check_layout(batch_size)
        rng = self.rng if rng is None else rng
        if self.prob < 1 and rng.random() >= self.prob:
            return MixResult(batch_inputs, batch_data_samples, stats)
        num_pairs = self.pairs_for(batch_size)
        order = rng.permutation(batch_size)[:2 * num_pairs].tolist()
        pairs = list(zip(order[0::2], order[1::2]))

        shapes = [tuple(s.metainfo['img_shape'][:2]) for s in batch_data_samples]
        masks = [_masks_tensor(s.gt_instances, shapes[n], batch_inputs.device)
                 for n, s in enumerate(batch_data_samples)]
        new_inputs = batch_inputs.clone()
        new_samples = list(batch_data_samples)
        for i, j in pairs:
            for src, dst in ((i, j), (j, i)):
                inst = self._mix_into(batch_inputs, batch_data_samples, masks, shapes,
                                      src, dst, new_inputs, rng, stats)
                # Shallow copy (data fields shared, metainfo copied): the caller's sample
                # keeps its gt_instances.
                new_samples[dst] = batch_data_samples[dst].new()
                new_samples[dst].gt_instances = inst
        stats['arp_pairs'] = len(pairs)
        return MixResult(new_inputs, new_samples, stats)

    def _mix_into(self, batch_inputs: Tensor, samples: SampleList, masks: List[Tensor],
                  shapes: List[Tuple[int, int]], src: int, dst: int, new_inputs: Tensor,
                  rng: np.random.Generator, stats: Dict[str, int]) -> InstanceData:
        """Paste ``src``'s large instances onto ``dst``; writes ``new_inputs[dst]``.

        Returns the destination's new ``InstanceData``; adds to ``stats``.
        """
        src_inst, dst_inst = samples[src].gt_instances, samples[dst].gt_instances
        (h_s, w_s), (h_d, w_d) = shapes[src], shapes[dst]
        # Only real image content of the source (its img_shape) may be pasted.
        src_masks = masks[src][:, :h_s, :w_s]
        areas = src_masks.flatten(1).sum(1)
        chosen = torch.nonzero(areas >= max(self.min_area, 1)).flatten()
        if self.paste_order == 'largest_first':
            chosen = chosen[torch.argsort(areas[chosen], descending=True, stable=True)]
        boxes = masks_to_boxes(src_masks[chosen]).tolist()

        scales, offsets = [], []
        for x1, y1, x2, y2 in boxes:
            if self.placement == 'static':
                scales.append(1.0)
                offsets.append((int(x1), int(y1)))
                continue
            scale = float(rng.uniform(*self.scale_range))
            hs, ws = scaled_size(int(y2 - y1), int(x2 - x1), scale)
            if self.placement == 'uniform':
                ox = int(rng.integers(0, w_d - ws + 1)) if ws <= w_d else (w_d - ws) // 2
                oy = int(rng.integers(0, h_d - hs + 1)) if hs <= h_d else (h_d - hs) // 2
                scales.append(scale)
                offsets.append((ox, oy))
                continue
            tx, ty = rng.uniform(-self.max_translate, self.max_translate, size=2)
            cx = (x1 + x2) / 2 * w_d / w_s + tx * w_d
            cy = (y1 + y2) / 2 * h_d / h_s + ty * h_d
            scales.append(scale)
            offsets.append((_clamp_start(cx - ws / 2, ws, w_d), _clamp_start(cy - hs / 2, hs, h_d)))

        res = paste_instances(new_inputs[dst], masks[dst], batch_inputs[src], src_masks[chosen],
                              scales, offsets, valid_shape=(h_d, w_d),
                              min_kept_area=self.min_kept_area,
                              exclusive_dst=self.occlusion == 'exclusive', src_boxes=boxes)
        new_inputs[dst] = res.img
        pasted_rows = chosen[res.pasted_keep]
        stats['arp_pasted'] += int(res.pasted_keep.sum())
        stats['arp_dropped'] += int((~res.dst_keep).sum())
        return self._combine(dst_inst, src_inst, res, pasted_rows)

    @staticmethod
    def _combine(dst_inst: InstanceData, src_inst: InstanceData, res: PasteResult,
                 pasted_rows: Tensor) -> InstanceData:
        """Kept destination instances, then the pasted ones (paste order).

        Boxes (from the masks) only when the destination's instances carry boxes: in
        :class:`SemiMaskDetector` they do not, and the boxes are computed once after the
        last stage that changes the masks.

        Args:
            pasted_rows: ``(N_p,)`` source row of each pasted mask in ``res.pasted_masks``.
        """
        all_masks = torch.cat([res.dst_masks, res.pasted_masks.to(res.dst_masks.device)])
        dst_rows = torch.nonzero(res.dst_keep).flatten()
        keys = [k for k in dst_inst.keys() if k not in ('masks', 'bboxes') and k in src_inst]
        kept = InstanceData(metainfo=dst_inst.metainfo, **{k: dst_inst[k] for k in keys})
        pasted = InstanceData(metainfo=dst_inst.metainfo, **{k: src_inst[k] for k in keys})
        out = InstanceData.cat([kept[dst_rows], pasted[pasted_rows]])
        template = dst_inst.masks if 'masks' in dst_inst else None
        out.masks = _like_masks(template, all_masks)
        if 'bboxes' in dst_inst:
            ref, boxes = dst_inst.bboxes, masks_to_boxes(all_masks)
            if isinstance(ref, BaseBoxes):
                boxes = type(ref)(boxes.to(ref.device))
            else:
                boxes = boxes.to(ref.device, ref.dtype)
            out.bboxes = boxes
        return out


def check_arp_layout(model_cfg: dict, unlabelled_per_gpu: int) -> Optional[float]:
    """ARP's mixing share for a config's per-GPU unlabelled batch; refuse a layout that
    makes ARP a no-op or mixes every image (:meth:`ARPInstanceMixer.check_layout`).

    Args:
        model_cfg: The config's ``model`` (a ``SemiMaskDetector`` with
            ``semi_train_cfg.instance_mixer``, or any other model: nothing to check).
        unlabelled_per_gpu: Unlabelled images in one per-GPU batch (the sampler's count
            for the unlabelled source, e.g. from ``check_semi_sampler``).

    Returns:
        The share of the unlabelled images ARP mixes, or ``None`` without ARP.

    Raises:
        ARPLayoutError: Naming the batch and the layouts that work.
    """
    mixer_cfg = (model_cfg.get('semi_train_cfg') or {}).get('instance_mixer')
    if not mixer_cfg:
        return None
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmssis'):
        mixer = MODELS.build(mixer_cfg) if isinstance(mixer_cfg, dict) else mixer_cfg
    return mixer.check_layout(int(unlabelled_per_gpu))


def _clamp_start(start: float, size: int, limit: int) -> int:
    """Top-left coordinate of a ``size`` box clamped so it lies inside ``[0, limit]``.

    A box larger than ``limit`` is centred (and clipped by :func:`paste_instances`).
    """
    if size >= limit:
        return (limit - size) // 2
    return int(min(max(int(round(start)), 0), limit - size))

