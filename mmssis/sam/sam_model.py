"""Backend around an already built ``segment_anything.modeling.Sam``."""
from __future__ import annotations

import contextlib
from typing import Any, Optional, Tuple, Union

import numpy as np
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide
from torch import Tensor

from mmssis.registry import MODELS
from .base import ImageEmbedding, SamBackend

__all__ = ['SamModelBackend']


@MODELS.register_module()
class SamModelBackend(SamBackend):
    """Wraps any ``segment_anything.modeling.Sam`` (original, LiteMedSAM, tiny test
    models) and exposes the :class:`SamBackend` API.

    Image preprocessing and prompt mapping follow ``SamPredictor``: the image is
    resized with ``ResizeLongestSide(image_encoder.img_size).apply_image``,
    normalised by ``sam.pixel_mean / sam.pixel_std``, zero padded to a square;
    prompts are mapped with ``apply_coords_torch`` / ``apply_boxes_torch``; masks
    are mapped back with ``Sam.postprocess_masks``.

    Args:
        sam: The network. It is frozen in place (eval, ``requires_grad=False``).
        requires_box: Refuse to decode without box prompts (box-trained models).
        device: Device to keep ``sam`` on. ``None`` (default): SAM follows the device of
            the detector that uses it (see :meth:`SamBackend.follow`).
        name: Cache namespace (defaults to the class name); set it to something
            identifying the weights when several models share one disk cache.
        max_prompts_per_call: ``None`` (default): all prompts of an image go
            through ONE mask-decoder call. An int splits them into chunks of at
            most that many prompts -- on CPU the batched decoder is memory-bound
            and chunks of 1-4 are faster; on GPU it bounds memory for many prompts.
        decoder_dtype: ``None`` (default, float32) or ``'bfloat16'`` / ``'float16'``: run
            the prompt encoder + mask decoder of :meth:`predict_low_res` / :meth:`decode`
            under ``torch.autocast`` with that dtype (outputs are returned as float32).
            :meth:`decoder_image_tokens` (distillation targets) stays float32. The decoder is what the cached refinement
            path spends its time in (one pass over the 64x64 image tokens per prompt).
            Measured with LiteMedSAM on a 2-core AVX512-BF16 CPU: ``'bfloat16'`` decodes
            4 boxes ~1.5x faster, masks agreeing with float32 at IoU 0.96-0.999.
    """

    DECODER_DTYPES = (None, 'bfloat16', 'float16')

    def __init__(self, sam: Sam, requires_box: bool = False,
                 device: Union[str, torch.device, None] = None,
                 name: Optional[str] = None,
                 max_prompts_per_call: Optional[int] = None,
                 decoder_dtype: Optional[str] = None) -> None:
        self._set_max_prompts_per_call(max_prompts_per_call)
        if decoder_dtype not in self.DECODER_DTYPES:
            raise ValueError(f'decoder_dtype must be one of {self.DECODER_DTYPES}, '
                             f'got {decoder_dtype!r}')
        self.decoder_dtype = decoder_dtype
        self._sam = self.freeze(sam)
        self.pin_device(device)
        self.requires_box = requires_box
        self.image_size = int(sam.image_encoder.img_size)
        self.mask_threshold = float(getattr(sam, 'mask_threshold', 0.0))
        self.transform = ResizeLongestSide(self.image_size)
        self._name = name or type(self).__name__

    @property
    def model(self) -> Sam:
        return self._sam

    @property
    def device(self) -> torch.device:
        return self._sam.device

    @property
    def cache_namespace(self) -> str:
        return self._name

    @property
    def num_multimask_outputs(self) -> int:
        return int(self._sam.mask_decoder.num_multimask_outputs)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(name={self._name!r}, image_size={self.image_size}, '
                f'requires_box={self.requires_box}, device={self.device}, '
                f'max_prompts_per_call={self.max_prompts_per_call}, '
                f'decoder_dtype={self.decoder_dtype!r})')

    def _decoder_autocast(self):
        """``torch.autocast`` context of the prompt encoder + mask decoder (or a no-op)."""
        if self.decoder_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, self.decoder_dtype))

    # ----------------------------------------------------------------- encode
    def _encode(self, image: np.ndarray) -> ImageEmbedding:
        """``image``: ``(H, W, 3)`` uint8 RGB -> embedding ``(1, C, h, w)``."""
        resized = self.transform.apply_image(image)  # (h', w', 3) uint8
        x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1)[None].float()
        x = self._sam.preprocess(x)  # normalise + pad to (1, 3, S, S)
        feats = self._sam.image_encoder(x)
        return ImageEmbedding(embedding=feats, original_size=tuple(image.shape[:2]),
                              input_size=tuple(resized.shape[:2]))

    # ----------------------------------------------------------------- decode
    def _embed_prompts(self, emb: ImageEmbedding, boxes: Optional[Tensor],
                       points: Optional[Tensor], point_labels: Optional[Tensor]
                       ) -> Tuple[Tensor, Tensor]:
        """Maps validated prompts (original frame) to the input frame and runs the
        prompt encoder.

        Returns:
            ``(sparse (N, T, C), dense (N, C, h, w))``.
        """
        pts = None
        if points is not None:
            pts = (self.transform.apply_coords_torch(points, emb.original_size), point_labels)
        if boxes is not None:
            boxes = self.transform.apply_boxes_torch(boxes, emb.original_size)
        sparse, dense = self._sam.prompt_encoder(points=pts, boxes=boxes, masks=None)
        return sparse, dense

    def _run_decoder(self, emb: ImageEmbedding, sparse: Tensor, dense: Tensor,
                     multimask: bool) -> Tuple[Tensor, Tensor]:
        return self._sam.mask_decoder(
            image_embeddings=emb.embedding.to(self.device),
            image_pe=self._sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask)

    @torch.no_grad()
    def predict_low_res(self, emb: ImageEmbedding, boxes: Optional[Tensor] = None,
                        points: Optional[Tensor] = None,
                        point_labels: Optional[Tensor] = None,
                        multimask: bool = True) -> Tuple[Tensor, Tensor]:
        n, boxes, points, point_labels = self._check_prompts(boxes, points, point_labels)
        if n == 0:
            m = self.num_multimask_outputs if multimask else 1
            s = self._low_res_size(emb)
            return (torch.zeros((0, m, *s), device=self.device),
                    torch.zeros((0, m), device=self.device))
        with self._decoder_autocast():
            sparse, dense = self._embed_prompts(emb, boxes, points, point_labels)
            return self._decode_chunks(emb, sparse, dense, multimask)

    def _low_res_size(self, emb: ImageEmbedding) -> Tuple[int, int]:
        h, w = emb.embedding.shape[-2:]
        return 4 * h, 4 * w  # MaskDecoder upscales the embedding grid 4x

    @torch.no_grad()
    def postprocess_masks(self, emb: ImageEmbedding, low_res_logits: Tensor) -> Tensor:
        if low_res_logits.shape[0] == 0:
            return low_res_logits.new_zeros((0, low_res_logits.shape[1], *emb.original_size))
        return self._sam.postprocess_masks(low_res_logits, emb.input_size, emb.original_size)

    @torch.no_grad()
    def decoder_image_tokens(self, emb: ImageEmbedding, points: Optional[Tensor],
                             point_labels: Optional[Tensor] = None,
                             boxes: Optional[Tensor] = None) -> Tensor:
        n, boxes, points, point_labels = self._check_prompts(boxes, points, point_labels)
        c = int(self._sam.mask_decoder.transformer_dim)
        h, w = emb.embedding.shape[-2:]
        if n == 0:
            return torch.zeros((0, c, h, w), device=self.device)
        sparse, dense = self._embed_prompts(emb, boxes, points, point_labels)
        return self._decoder_tokens(emb, sparse, dense, self._sam.mask_decoder.transformer)
