"""``TensorMasks``: mmdet instance masks whose pixels stay a tensor on the model's device.

mmdet's heads read ground-truth masks through a few methods of its mask types:
Mask2Former / MaskFormer through ``to_tensor`` (``preprocess_panoptic_gt``), Mask R-CNN
through ``height`` / ``width`` and ``crop_and_resize(...).to_ndarray()`` (``mask_target``).
``BitmapMasks`` holds numpy, so tensors made on a GPU (the pseudo-labels) would go to the
host and back for every step. ``TensorMasks`` is a ``BitmapMasks`` whose ``masks`` are
kept as a ``(N, H, W)`` tensor: ``to_tensor`` and ``crop_and_resize`` (mmcv's ``roi_align``,
as ``BitmapMasks``) run where the tensor is, so Mask2Former needs no host copy and Mask R-CNN
copies only its ``(P, 28, 28)`` RoI targets (which mmdet copies for ``BitmapMasks`` too).
Every other ``BitmapMasks`` method works on a host copy (:attr:`masks`).
"""
from typing import Sequence

import numpy as np
import torch
from mmdet.structures.mask import BitmapMasks
from torch import Tensor


class TensorMasks(BitmapMasks):
    """Instance masks as a ``(N, H, W)`` tensor (bool, or float for soft RoI targets).

    Args:
        masks: ``(N, H, W)`` tensor on any device; kept as given (no copy).
    """

    def __init__(self, masks: Tensor) -> None:  # noqa: D107 (BitmapMasks' init is numpy)
        if not isinstance(masks, Tensor) or masks.dim() != 3:
            raise ValueError(f'TensorMasks needs an (N, H, W) tensor, got '
                             f'{type(masks).__name__} {tuple(getattr(masks, "shape", ()))}')
        self.tensor = masks
        self.height, self.width = int(masks.shape[1]), int(masks.shape[2])

    @property
    def masks(self) -> np.ndarray:
        """``(N, H, W)`` host copy (uint8 for bool masks) for the numpy-based methods."""
        arr = self.tensor.detach().cpu().numpy()
        return arr.astype(np.uint8) if arr.dtype == np.bool_ else arr

    def __len__(self) -> int:
        return int(self.tensor.shape[0])

    def __getitem__(self, index) -> 'TensorMasks':
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        if isinstance(index, Tensor):
            index = index.to(self.tensor.device)
        return TensorMasks(self.tensor[index].reshape(-1, self.height, self.width))

    @classmethod
    def cat(cls, masks: Sequence['TensorMasks']) -> 'TensorMasks':
        if not masks:
            raise ValueError('masks should not be an empty list')
        return cls(torch.cat([m.tensor for m in masks]))

    def to_tensor(self, dtype: torch.dtype, device) -> Tensor:
        return self.tensor.to(device=device, dtype=dtype)

    def crop_and_resize(self, bboxes, out_shape, inds, device='cpu',
                        interpolation: str = 'bilinear', binarize: bool = True
                        ) -> 'TensorMasks':
        """``BitmapMasks.crop_and_resize`` on the tensor's device.

        Args:
            bboxes: ``(P, 4)`` xyxy RoIs (array or tensor) in the masks' frame.
            out_shape: ``(h, w)`` of each target.
            inds: ``(P,)`` mask index of each RoI.
            device: Ignored: the work runs where the masks are.
            interpolation: Only ``'bilinear'`` (``roi_align``), as ``BitmapMasks``.
            binarize: Threshold the targets at 0.5 (bool), else soft float targets.

        Returns:
            ``(P, h, w)`` targets on the masks' device.
        """
        from mmcv.ops import roi_align
        dev = self.tensor.device
        bboxes = torch.as_tensor(bboxes, device=dev)
        inds = torch.as_tensor(inds, device=dev, dtype=torch.long)
        if len(self) == 0 or bboxes.shape[0] == 0:
            dtype = torch.bool if binarize else torch.float32
            return TensorMasks(torch.zeros((0, *out_shape), dtype=dtype, device=dev))
        fake_inds = torch.arange(bboxes.shape[0], device=dev).to(bboxes.dtype)[:, None]
        rois = torch.cat([fake_inds, bboxes], dim=1)
        masks = self.tensor.index_select(0, inds).to(rois.dtype)
        targets = roi_align(masks[:, None], rois, out_shape, 1.0, 0, 'avg', True).squeeze(1)
        return TensorMasks(targets >= 0.5 if binarize else targets)
