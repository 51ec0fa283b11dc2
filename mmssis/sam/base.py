"""Abstract SAM backend interface and the image-embedding container.

Coordinate conventions used by every backend (the same as segment-anything's
``SamPredictor``):

* **Original image frame** -- pixel coordinates of the image handed to
  :meth:`SamBackend.encode`, shape ``(H, W)``. All prompts (boxes ``xyxy``,
  points ``xy``) and all returned masks live in this frame. A point ``(x, y)``
  refers to the pixel with column index ``x`` and row index ``y`` (the prompt
  encoder shifts it to the pixel centre itself).
* **Input frame** -- the image after :class:`ResizeLongestSide` to the model's
  square input length ``image_size`` (1024 for SAM, 256 for LiteMedSAM), before
  zero padding. Backends map prompts into it internally; callers never see it.

Why SAM is *not* an ``nn.Module``
---------------------------------
:class:`SamBackend` is a plain Python object that *holds* the frozen SAM network.
Assigning it as an attribute of a detector (``self.sam = backend``) therefore does
not register it as a sub-module: none of SAM's weights appear in the detector's
``state_dict()``, ``parameters()``, optimizer param groups, EMA copies or saved
checkpoints, and ``detector.to(device)`` does not move it (call
:meth:`SamBackend.to`). ``copy.deepcopy(backend)`` returns the same object, so
mmengine's ``ExponentialMovingAverage`` (which deep-copies the whole model) shares
the frozen network instead of duplicating it.
"""
from __future__ import annotations

import abc
import contextlib
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from .embedding import ImageEmbedding

ImageLike = Union[np.ndarray, Tensor]


def to_hwc_uint8_rgb(image: ImageLike, channel_order: str = 'rgb') -> np.ndarray:
    """Converts an image to the ``(H, W, 3)`` uint8 RGB numpy array SAM expects.

    Args:
        image: ``np.ndarray`` of shape ``(H, W, 3)``, or a ``Tensor`` of shape
            ``(H, W, 3)`` or ``(3, H, W)`` (CHW is assumed when the first dim is 3
            and the last is not), on any device. uint8 in ``[0, 255]``; float
            images are clipped to ``[0, 255]`` and rounded.
        channel_order: ``'rgb'`` or ``'bgr'`` (mmcv / OpenCV loaders give BGR).

    Returns:
        Contiguous ``(H, W, 3)`` uint8 RGB array on the CPU.
    """
    if channel_order not in ('rgb', 'bgr'):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    if isinstance(image, Tensor):
        t = image.detach()
        if t.dim() == 3 and t.shape[0] == 3 and t.shape[-1] != 3:
            t = t.permute(1, 2, 0)
        arr = t.cpu().numpy()
    else:
        arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f'expected an (H, W, 3) image, got shape {arr.shape}')
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float32)), 0, 255).astype(np.uint8)
    if channel_order == 'bgr':
        arr = arr[..., ::-1]
    return np.ascontiguousarray(arr)


class SamBackend(abc.ABC):
    """A frozen promptable segmenter: encode an image once, decode many prompts.

    Subclasses implement :meth:`_encode`, :meth:`predict_low_res`,
    :meth:`postprocess_masks` and :meth:`decoder_image_tokens`; :meth:`encode` and
    :meth:`decode` are provided here.

    The backend is deliberately not an ``nn.Module`` (see the module docstring):
    store it on a detector freely, its weights never reach the detector's
    ``state_dict``/optimizer/EMA.

    Attributes:
        requires_box: The model only gives usable masks with a box prompt
            (LiteMedSAM). Decoding without ``boxes`` then raises ``ValueError``.
        image_size: Side of the square model input (input frame), e.g. 1024.
    """

    requires_box: bool = False
    image_size: int
    mask_threshold: float = 0.0

    # ------------------------------------------------------------------ model
    @property
    @abc.abstractmethod
    def model(self) -> nn.Module:
        """The wrapped frozen network (read-only access, e.g. for hooks)."""

    @property
    def device(self) -> torch.device:
        for t in self.model.parameters():
            return t.device
        for t in self.model.buffers():
            return t.device
        return torch.device('cpu')

    def to(self, device: Union[str, torch.device]) -> 'SamBackend':
        """Moves the wrapped network to ``device`` in place; returns ``self``."""
        self.model.to(device)
        return self

    #: Device the user asked for (``device=...`` of the backend); None follows the model.
    pinned_device: Optional[torch.device] = None

    def pin_device(self, device: Union[str, torch.device, None]) -> None:
        """Moves SAM to ``device`` and keeps it there; ``None`` lets it follow the model.

        Backends call this from ``__init__`` with their ``device`` argument.
        """
        self.pinned_device = None if device is None else torch.device(device)
        if self.pinned_device is not None:
            self.to(self.pinned_device)

    def follow(self, device: Union[str, torch.device]) -> 'SamBackend':
        """Moves SAM to ``device`` (the device of the detector's batch) unless pinned.

        SAM is held outside the detector's module tree, so ``model.cuda()`` does not move
        it; the refiner and the distiller call this every step so that a GPU run never
        runs SAM on the CPU by accident. A pinned backend (``device=...``) stays put.
        """
        device = torch.device(device)
        if self.pinned_device is None and self.device != device:
            self.to(device)
        return self

    def token_centres(self, emb: 'ImageEmbedding') -> Tuple[Tensor, Tensor]:
        """Original-frame centres of the embedding grid's cells and which lie on the image.

        The default is segment-anything's geometry: the image is resized so its longest
        side is :attr:`image_size` (``emb.input_size``) and zero-padded bottom/right to a
        square; cell ``(i, j)`` of the ``(h, w)`` grid covers input pixels
        ``[j * S / w, (j + 1) * S / w)`` (``S = image_size``), and cells whose centre lies
        in the padding are not on the image.

        Returns:
            ``(centres, valid)``: ``(h * w, 2)`` float32 ``xy`` in original pixels (row-major
            over the grid) and ``(h * w,)`` bool.
        """
        gh, gw = emb.embedding.shape[-2:]
        ys = (torch.arange(gh, dtype=torch.float32) + 0.5) * (self.image_size / gh)
        xs = (torch.arange(gw, dtype=torch.float32) + 0.5) * (self.image_size / gw)
        yy, xx = torch.meshgrid(ys, xs, indexing='ij')
        in_h, in_w = emb.input_size
        valid = (yy < in_h) & (xx < in_w)
        ori_h, ori_w = emb.original_size
        centres = torch.stack([xx * (ori_w / in_w), yy * (ori_h / in_h)], dim=-1)
        return centres.reshape(-1, 2), valid.reshape(-1)

    @property
    def num_multimask_outputs(self) -> int:
        """``M`` of ``decode(..., multimask=True)`` (3 for SAM)."""
        return 3

    @property
    def cache_namespace(self) -> str:
        """Prefix of cache keys, so that embeddings of different models never mix."""
        return type(self).__name__

    def __deepcopy__(self, memo: Dict[int, Any]) -> 'SamBackend':
        # Frozen and shared: EMA / teacher copies of a detector must not clone SAM.
        return self

    @staticmethod
    def freeze(model: nn.Module) -> nn.Module:
        """Puts ``model`` in eval mode and disables gradients of all its parameters."""
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    # ----------------------------------------------------------------- encode
    @abc.abstractmethod
    def _encode(self, image: np.ndarray) -> ImageEmbedding:
        """Runs the image encoder on an ``(H, W, 3)`` uint8 RGB array."""

    @torch.no_grad()
    def encode(self, image: ImageLike, channel_order: str = 'rgb') -> ImageEmbedding:
        """Computes the image embedding (once per image; reuse it for all prompts).

        Caching is the refiner's (:class:`~mmssis.sam.SamMaskRefiner`): a backend only
        encodes and decodes.

        Args:
            image: ``(H, W, 3)`` uint8 image (numpy or tensor; a ``(3, H, W)``
                tensor is accepted too), see :func:`to_hwc_uint8_rgb`.
            channel_order: ``'rgb'`` (default) or ``'bgr'``.

        Returns:
            The :class:`ImageEmbedding` on :attr:`device`, ``original_size=(H, W)``.
        """
        return self._encode(to_hwc_uint8_rgb(image, channel_order))

    # ----------------------------------------------------------------- decode
    @abc.abstractmethod
    def predict_low_res(self, emb: ImageEmbedding, boxes: Optional[Tensor] = None,
                        points: Optional[Tensor] = None,
                        point_labels: Optional[Tensor] = None,
                        multimask: bool = True) -> Tuple[Tensor, Tensor]:
        """One batched mask-decoder call for all prompts of an image.

        Args: see :meth:`decode`.

        Returns:
            ``(low_res_logits, iou_pred)``: mask logits of shape ``(N, M, h_lr, w_lr)``
            in the padded square input frame at low resolution (256x256 for SAM),
            and predicted IoUs ``(N, M)``; ``M = 3`` if ``multimask`` else 1.
        """

    @abc.abstractmethod
    def postprocess_masks(self, emb: ImageEmbedding, low_res_logits: Tensor) -> Tensor:
        """Maps low-res logits ``(N, M, h_lr, w_lr)`` to ``(N, M, H, W)`` logits in
        the original image frame (removes padding, bilinear upsampling)."""

    @torch.no_grad()
    def decode(self, emb: ImageEmbedding, boxes: Optional[Tensor] = None,
               points: Optional[Tensor] = None, point_labels: Optional[Tensor] = None,
               multimask: bool = True, return_logits: bool = False) -> Tuple[Tensor, Tensor]:
        """Predicts masks for ``N`` prompts of one image in ONE mask-decoder call
        (unless the backend was configured with ``max_prompts_per_call``).

        Args:
            emb: Embedding from :meth:`encode`.
            boxes: ``(N, 4)`` boxes, ``xyxy`` pixels in the original image frame.
            points: ``(N, K, 2)`` points, ``xy`` pixels in the original image frame.
            point_labels: ``(N, K)`` ints: 1 foreground, 0 background, -1 padding
                (ignored point). Defaults to all ones.
            multimask: Return SAM's 3 ambiguity-aware masks (``M=3``) instead of
                the single-mask output (``M=1``).
            return_logits: Return float logits instead of thresholded masks.

        Returns:
            ``(masks, iou_pred)``: ``masks`` of shape ``(N, M, H, W)`` (bool, or
            float logits) at the original image size ``emb.original_size``, and
            ``iou_pred`` of shape ``(N, M)``. Both on :attr:`device`.

        Raises:
            ValueError: No prompt given, inconsistent ``N``, or a box-only model
                (``requires_box``) called without ``boxes``.
        """
        low_res, iou_pred = self.predict_low_res(emb, boxes, points, point_labels, multimask)
        masks = self.postprocess_masks(emb, low_res)
        if not return_logits:
            masks = masks > self.mask_threshold
        return masks, iou_pred

    @abc.abstractmethod
    def decoder_image_tokens(self, emb: ImageEmbedding, points: Optional[Tensor],
                             point_labels: Optional[Tensor] = None,
                             boxes: Optional[Tensor] = None) -> Tensor:
        """Image tokens of the mask decoder after its last two-way transformer block.

        These are the ``keys`` returned by SAM's ``TwoWayTransformer`` (image tokens
        updated by token-to-image and image-to-token attention for each prompt),
        reshaped to the embedding grid -- the target of S4M's structural
        distillation.

        Args:
            emb: Embedding from :meth:`encode`.
            points: ``(N, K, 2)`` ``xy`` pixels in the original image frame.
            point_labels: ``(N, K)``; defaults to all ones.
            boxes: Optional ``(N, 4)`` ``xyxy`` pixels in the original image frame.

        Returns:
            Tensor of shape ``(N, C, h, w)`` (``C`` = decoder transformer dim, 256 for
            SAM; ``(h, w)`` = embedding grid, 64x64), on :attr:`device`.
        """

    # ---------------------------------------------------------------- helpers
    #: ``None``: all prompts of an image go through one mask-decoder call; an int bounds
    #: the prompts per call (see :meth:`_set_max_prompts_per_call`).
    max_prompts_per_call: Optional[int] = None

    def _set_max_prompts_per_call(self, value: Optional[int]) -> None:
        if value is not None and value < 1:
            raise ValueError('max_prompts_per_call must be >= 1 or None')
        self.max_prompts_per_call = value

    def _chunks(self, n: int):
        step = self.max_prompts_per_call or max(n, 1)
        return [slice(i, i + step) for i in range(0, n, step)]

    def _run_decoder(self, emb: ImageEmbedding, sparse: Tensor, dense: Tensor,
                     multimask: bool) -> Tuple[Tensor, Tensor]:
        """One mask-decoder call: ``(low_res_logits (n, M, h', w'), iou (n, M))``.

        Backends that use :meth:`_decode_chunks` / :meth:`_decoder_tokens` implement it.
        """
        raise NotImplementedError

    def _decode_chunks(self, emb: ImageEmbedding, sparse: Tensor, dense: Tensor,
                       multimask: bool) -> Tuple[Tensor, Tensor]:
        """:meth:`_run_decoder` over the prompt chunks, outputs concatenated (float32)."""
        outs = [self._run_decoder(emb, sparse[c], dense[c], multimask)
                for c in self._chunks(sparse.shape[0])]
        low_res, iou = map(torch.cat, zip(*outs)) if len(outs) > 1 else outs[0]
        return low_res.float(), iou.float()

    def _decoder_tokens(self, emb: ImageEmbedding, sparse: Tensor, dense: Tensor,
                        transformer: nn.Module) -> Tensor:
        """Image tokens after ``transformer`` (the decoder's two-way transformer) per prompt.

        Returns:
            ``(n, C, h, w)``: the transformer's ``keys`` output reshaped to the embedding grid.
        """
        h, w = emb.embedding.shape[-2:]
        tokens = []
        for chunk in self._chunks(sparse.shape[0]):
            # The decoder stops right after its transformer: the mask upscaling and the
            # hypernetworks after it (about a fifth of a LiteMedSAM decoder call) do not
            # change these tokens.
            with capture_output(transformer, stop=True) as store:
                try:
                    self._run_decoder(emb, sparse[chunk], dense[chunk], multimask=True)
                except _StopForward:
                    pass
            keys = store['output'][1]  # (n_chunk, h*w, C): image tokens after the last block
            tokens.append(keys.transpose(1, 2).reshape(keys.shape[0], -1, h, w))
        return torch.cat(tokens) if len(tokens) > 1 else tokens[0]

    def _check_prompts(self, boxes: Optional[Tensor], points: Optional[Tensor],
                       point_labels: Optional[Tensor]
                       ) -> Tuple[int, Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
        """Validates prompt shapes, moves them to :attr:`device`; returns ``N`` too."""
        dev = self.device
        if boxes is None and points is None:
            raise ValueError('decode needs at least one prompt: boxes and/or points')
        if self.requires_box and boxes is None:
            raise ValueError(
                f'{type(self).__name__} was trained with box prompts only; points alone '
                'give near-empty masks. Pass boxes (N, 4) xyxy (optionally with points).')
        n = None
        if boxes is not None:
            boxes = torch.as_tensor(boxes, dtype=torch.float32, device=dev)
            if boxes.dim() != 2 or boxes.shape[1] != 4:
                raise ValueError(f'boxes must have shape (N, 4), got {tuple(boxes.shape)}')
            n = boxes.shape[0]
        if points is not None:
            points = torch.as_tensor(points, dtype=torch.float32, device=dev)
            if points.dim() != 3 or points.shape[2] != 2:
                raise ValueError(f'points must have shape (N, K, 2), got {tuple(points.shape)}')
            if n is not None and points.shape[0] != n:
                raise ValueError(f'{n} boxes but {points.shape[0]} point sets')
            n = points.shape[0]
            if point_labels is None:
                point_labels = torch.ones(points.shape[:2], dtype=torch.int64, device=dev)
            point_labels = torch.as_tensor(point_labels, dtype=torch.int64, device=dev)
            if point_labels.shape != points.shape[:2]:
                raise ValueError(f'point_labels must have shape {tuple(points.shape[:2])}, '
                                 f'got {tuple(point_labels.shape)}')
        elif point_labels is not None:
            raise ValueError('point_labels given without points')
        return n, boxes, points, point_labels


class _StopForward(Exception):
    """Raised by :func:`capture_output` with ``stop=True`` once the output is captured."""


@contextlib.contextmanager
def capture_output(module: nn.Module, stop: bool = False) -> Iterator[Dict[str, Any]]:
    """Context manager capturing the (last) forward output of ``module``.

    Yields a dict whose ``'output'`` entry is set after each forward call. With ``stop``
    the hook then raises :class:`_StopForward`, ending the enclosing forward pass there
    (the caller catches it).
    """
    store: Dict[str, Any] = {}

    def hook(_m, _inp, out):
        store['output'] = out
        if stop:
            raise _StopForward

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()

