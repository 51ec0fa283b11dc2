"""SAM 2 / SAM 2.1 image backend (optional extra: ``pip install 'mmssis[sam2]'``).

Frames. SAM 2 resizes the whole image to a square ``image_size x image_size`` input
(``SAM2Transforms``: no aspect-preserving resize, no padding), so ``input_size`` is
``(image_size, image_size)``, every cell of the embedding grid lies on the image, and
cell ``(i, j)`` of the ``(h, w)`` grid is centred at ``((j + 0.5) W / w, (i + 0.5) H / h)``
in original pixels. Prompts and masks are in the original image frame, as for every
:class:`~mmssis.sam.base.SamBackend`.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Any, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from mmssis.registry import MODELS
from .base import ImageEmbedding, SamBackend
from .checkpoint import load_sam_weights, missing_checkpoint_error

__all__ = ['Sam2Backend', 'sam2_available', 'build_sam2_network']

#: SAM 2 checkpoints as published by Meta (file names as the official S4M code uses them).
SAM2_CONFIGS = {
    'sam2_hiera_large.pt': 'configs/sam2/sam2_hiera_l.yaml',
    'sam2_hiera_base_plus.pt': 'configs/sam2/sam2_hiera_b+.yaml',
    'sam2_hiera_small.pt': 'configs/sam2/sam2_hiera_s.yaml',
    'sam2_hiera_tiny.pt': 'configs/sam2/sam2_hiera_t.yaml',
    'sam2.1_hiera_large.pt': 'configs/sam2.1/sam2.1_hiera_l.yaml',
    'sam2.1_hiera_base_plus.pt': 'configs/sam2.1/sam2.1_hiera_b+.yaml',
    'sam2.1_hiera_small.pt': 'configs/sam2.1/sam2.1_hiera_s.yaml',
    'sam2.1_hiera_tiny.pt': 'configs/sam2.1/sam2.1_hiera_t.yaml',
}


def sam2_available() -> bool:
    """Whether the ``sam2`` package can be imported."""
    try:
        return importlib.util.find_spec('sam2') is not None
    except (ImportError, ValueError):
        return False


def build_sam2_network(config: str, image_size: Optional[int] = None) -> nn.Module:
    """A randomly initialised SAM 2 network of ``config`` on the CPU, in eval mode.

    Args:
        config: SAM 2 hydra config name shipped in the ``sam2`` package, e.g.
            ``'configs/sam2/sam2_hiera_l.yaml'``.
        image_size: Square input side (a multiple of 32). ``None`` keeps the config's
            1024; a smaller value builds the same architecture for a smaller input
            (tests, quick CPU runs).

    Raises:
        ImportError: ``sam2`` is not installed.
    """
    if not sam2_available():
        raise ImportError("the SAM 2 backend needs the `sam2` package: pip install 'mmssis[sam2]' "
                          '(or SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0)')
    from sam2.build_sam import build_sam2
    overrides = [] if image_size is None else [f'++model.image_size={int(image_size)}']
    return build_sam2(config, ckpt_path=None, device='cpu', mode='eval',
                      hydra_overrides_extra=overrides)


@MODELS.register_module()
class Sam2Backend(SamBackend):
    """SAM 2 / 2.1 image predictor behind the :class:`SamBackend` API.

    The network is built with ``sam2.build_sam.build_sam2(config, ckpt_path=None)`` and its
    weights loaded strictly from ``checkpoint`` with ``torch.load(weights_only=True)``
    (:func:`~mmssis.sam.checkpoint.load_sam_weights`: a missing file, an unreadable file
    or weights of another architecture are errors naming the file). The image is encoded
    once (``SAM2ImagePredictor.set_image``); all prompts of an image go through one
    prompt-encoder and one mask-decoder call.

    Args:
        config: SAM 2 hydra config name, e.g. ``'configs/sam2/sam2_hiera_l.yaml'`` (SAM 2
            Hiera-L, as the official S4M code uses) or
            ``'configs/sam2.1/sam2.1_hiera_l.yaml'``.
        checkpoint: Weights file (``{'model': state_dict}`` as Meta publishes them, or a
            bare state dict), e.g. ``'checkpoints/sam2_hiera_large.pt'``.
        image_size: Square input side; ``None`` keeps the config's (1024). The checkpoint
            must have been saved from a network of the same size.
        device: Device to keep SAM on; ``None`` (default) follows the detector's device.
        max_prompts_per_call: ``None``: one decoder call for all prompts of an image; an int
            bounds the prompts per call (memory).

    Raises:
        ImportError: ``sam2`` is not installed.
        FileNotFoundError: ``checkpoint`` does not exist.
        SamCheckpointError: ``checkpoint`` is not a state dict of ``config``'s network.
    """

    def __init__(self, config: str = 'configs/sam2/sam2_hiera_l.yaml',
                 checkpoint: str = '', image_size: Optional[int] = None,
                 device: Union[str, torch.device, None] = None,
                 max_prompts_per_call: Optional[int] = None) -> None:
        expected = f'SAM 2 ({config}{"" if image_size is None else f", image_size={image_size}"})'
        if not sam2_available():
            raise ImportError("Sam2Backend needs the `sam2` package: pip install 'mmssis[sam2]'")
        if not checkpoint or not os.path.isfile(checkpoint):
            raise missing_checkpoint_error(checkpoint, expected)
        self._set_max_prompts_per_call(max_prompts_per_call)
        from sam2.sam2_image_predictor import SAM2ImagePredictor
        net = build_sam2_network(config, image_size)
        load_sam_weights(net, checkpoint, expected)
        self._net = self.freeze(net)
        self.image_size = int(self._net.image_size)
        self._predictor = SAM2ImagePredictor(self._net)
        # The predictor hard-codes the feature sizes of a 1024 input (strides 4, 8, 16).
        s = self.image_size
        self._predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
        self.mask_threshold = float(self._predictor.mask_threshold)
        self._name = (f'sam2:{os.path.basename(config)}:{s}:'
                      f'{os.path.basename(os.fspath(checkpoint))}')
        self.pin_device(device)

    @property
    def model(self) -> nn.Module:
        return self._net

    @property
    def cache_namespace(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(name={self._name!r}, image_size={self.image_size}, '
                f'device={self.device})')

    # ----------------------------------------------------------------- encode
    @torch.no_grad()
    def _encode(self, image: np.ndarray) -> ImageEmbedding:
        p = self._predictor
        p.set_image(image)
        # sam2 1.1.0 has a public accessor for the image embedding only; the decoder's
        # high-resolution features are read where set_image left them.
        high_res = list(p._features['high_res_feats'])
        emb = ImageEmbedding(embedding=p.get_image_embedding(), original_size=image.shape[:2],
                             input_size=(self.image_size, self.image_size),
                             extras={'high_res_feats': high_res})
        p.reset_predictor()
        return emb

    def token_centres(self, emb: ImageEmbedding) -> Tuple[Tensor, Tensor]:
        """Cell centres of the stretched square input (all cells lie on the image)."""
        gh, gw = emb.embedding.shape[-2:]
        ori_h, ori_w = emb.original_size
        ys = (torch.arange(gh, dtype=torch.float32) + 0.5) * (ori_h / gh)
        xs = (torch.arange(gw, dtype=torch.float32) + 0.5) * (ori_w / gw)
        yy, xx = torch.meshgrid(ys, xs, indexing='ij')
        centres = torch.stack([xx, yy], dim=-1).reshape(-1, 2)
        return centres, torch.ones(gh * gw, dtype=torch.bool)

    # ----------------------------------------------------------------- decode
    def _prompt_embeddings(self, emb: ImageEmbedding, boxes: Optional[Tensor],
                           points: Optional[Tensor], point_labels: Optional[Tensor]
                           ) -> Tuple[Tensor, Tensor]:
        """Sparse ``(N, T, C)`` and dense ``(N, C, h, w)`` prompt embeddings.

        As ``SAM2ImagePredictor._predict``: boxes become two corner points (labels 2, 3)
        put before the point prompts; coordinates are scaled to the square input.
        """
        tf = self._predictor._transforms
        coords, labels = [], []
        if boxes is not None:
            box = tf.transform_boxes(boxes, normalize=True, orig_hw=emb.original_size)
            coords.append(box.reshape(-1, 2, 2))
            labels.append(torch.tensor([[2, 3]], dtype=torch.int, device=self.device)
                          .repeat(box.shape[0], 1))
        if points is not None:
            coords.append(tf.transform_coords(points, normalize=True,
                                              orig_hw=emb.original_size))
            labels.append(point_labels.to(torch.int))
        sparse, dense = self._net.sam_prompt_encoder(
            points=(torch.cat(coords, dim=1), torch.cat(labels, dim=1)), boxes=None,
            masks=None)
        # Without a mask prompt the encoder may return one dense embedding for all prompts.
        return sparse, dense.expand(sparse.shape[0], -1, -1, -1)

    def _run_decoder(self, emb: ImageEmbedding, sparse: Tensor, dense: Tensor,
                     multimask: bool) -> Tuple[Tensor, Tensor]:
        emb = emb.to(self.device)
        low_res, iou, _, _ = self._net.sam_mask_decoder(
            image_embeddings=emb.embedding,
            image_pe=self._net.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            repeat_image=True,
            high_res_features=list(emb.extras.get('high_res_feats', [])))
        return torch.clamp(low_res, -32.0, 32.0), iou

    @torch.no_grad()
    def predict_low_res(self, emb: ImageEmbedding, boxes: Optional[Tensor] = None,
                        points: Optional[Tensor] = None,
                        point_labels: Optional[Tensor] = None,
                        multimask: bool = True) -> Tuple[Tensor, Tensor]:
        n, boxes, points, point_labels = self._check_prompts(boxes, points, point_labels)
        if n == 0:
            m, s = (self.num_multimask_outputs if multimask else 1), self.image_size // 4
            return (torch.zeros((0, m, s, s), device=self.device),
                    torch.zeros((0, m), device=self.device))
        sparse, dense = self._prompt_embeddings(emb, boxes, points, point_labels)
        return self._decode_chunks(emb, sparse, dense, multimask)

    @torch.no_grad()
    def postprocess_masks(self, emb: ImageEmbedding, low_res_logits: Tensor) -> Tensor:
        if low_res_logits.shape[0] == 0:
            return low_res_logits.new_zeros((0, low_res_logits.shape[1], *emb.original_size))
        return self._predictor._transforms.postprocess_masks(low_res_logits, emb.original_size)

    @torch.no_grad()
    def decoder_image_tokens(self, emb: ImageEmbedding, points: Optional[Tensor],
                             point_labels: Optional[Tensor] = None,
                             boxes: Optional[Tensor] = None) -> Tensor:
        n, boxes, points, point_labels = self._check_prompts(boxes, points, point_labels)
        h, w = emb.embedding.shape[-2:]
        c = int(self._net.sam_mask_decoder.transformer_dim)
        if n == 0:
            return torch.zeros((0, c, h, w), device=self.device)
        sparse, dense = self._prompt_embeddings(emb, boxes, points, point_labels)
        return self._decoder_tokens(emb, sparse, dense, self._net.sam_mask_decoder.transformer)
