"""SAM 2 image backend (optional: needs the ``sam2`` package)."""
from __future__ import annotations

import importlib.util
import os
from typing import Any, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from mmssis.registry import MODELS
from .base import ImageEmbedding, SamBackend, capture_output
from .checkpoint import load_sam_weights

__all__ = ['Sam2Backend', 'sam2_available']


def sam2_available() -> bool:
    """Whether the ``sam2`` package can be imported."""
    return importlib.util.find_spec('sam2') is not None


@MODELS.register_module()
class Sam2Backend(SamBackend):
    """SAM 2 / 2.1 image predictor behind the :class:`SamBackend` API.

    Built with ``sam2.build_sam.build_sam2(config, ckpt_path=None)``; weights are
    loaded with :func:`~mmssis.sam.checkpoint.load_sam_weights` (weights_only).
    Decoding goes through ``SAM2ImagePredictor``'s prompt preparation and batched
    ``_predict`` (one mask-decoder call for all prompts).

    Note:
        ``sam2`` is not a dependency of mmssis and this backend is not exercised by
        the test-suite beyond the import check.

    Args:
        config: SAM 2 hydra config name, e.g. ``'configs/sam2.1/sam2.1_hiera_t.yaml'``.
        checkpoint: Weights file (``{'model': state_dict}`` or a bare state dict).
        device: Device for the network (default CPU).
        cache: Optional :class:`~mmssis.sam.cache.EmbeddingCache` (or its kwargs).

    Raises:
        ImportError: ``sam2`` is not installed (``pip install sam2``).
        FileNotFoundError: ``checkpoint`` does not exist.
    """

    def __init__(self, config: str = 'configs/sam2.1/sam2.1_hiera_t.yaml',
                 checkpoint: str = '', device: Union[str, torch.device, None] = None,
                 cache: Any = None) -> None:
        if not sam2_available():
            raise ImportError('Sam2Backend needs the `sam2` package, which is not installed: '
                              'pip install sam2')
        expected = f'SAM 2 ({config})'
        if not checkpoint or not os.path.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint for {expected} not found: {checkpoint!r}')
        super().__init__(cache=cache)
        from sam2.build_sam import build_sam2
        from sam2.sam2_image_predictor import SAM2ImagePredictor
        net = build_sam2(config, ckpt_path=None, device='cpu', mode='eval')
        load_sam_weights(net, checkpoint, expected)
        self._net = self.freeze(net)
        if device is not None:
            self._net.to(device)
        self._predictor = SAM2ImagePredictor(self._net)
        self.image_size = int(self._net.image_size)
        self._name = f'sam2:{os.path.basename(config)}:{os.path.basename(checkpoint)}'

    @property
    def model(self) -> nn.Module:
        return self._net

    @property
    def cache_namespace(self) -> str:
        return self._name

    def _set(self, emb: ImageEmbedding) -> Any:
        p = self._predictor
        p.reset_predictor()
        emb = emb.to(self.device)
        p._features = {'image_embed': emb.embedding,
                       'high_res_feats': list(emb.extras.get('high_res_feats', []))}
        p._orig_hw = [emb.original_size]
        p._is_image_set = True
        return p

    @torch.no_grad()
    def _encode(self, image: np.ndarray) -> ImageEmbedding:
        p = self._predictor
        p.set_image(image)
        feats = p._features
        return ImageEmbedding(embedding=feats['image_embed'], original_size=image.shape[:2],
                              input_size=(self.image_size, self.image_size),
                              extras={'high_res_feats': list(feats['high_res_feats'])})

    def _prepared(self, emb, boxes, points, point_labels):
        n, boxes, points, point_labels = self._check_prompts(boxes, points, point_labels)
        if n == 0:
            return 0, None, None, None, None
        p = self._set(emb)
        _, coords, labels, box = p._prep_prompts(points, point_labels, boxes, None, True)
        return n, p, coords, labels, box

    @torch.no_grad()
    def predict_low_res(self, emb: ImageEmbedding, boxes: Optional[Tensor] = None,
                        points: Optional[Tensor] = None,
                        point_labels: Optional[Tensor] = None,
                        multimask: bool = True) -> Tuple[Tensor, Tensor]:
        n, p, coords, labels, box = self._prepared(emb, boxes, points, point_labels)
        if n == 0:
            m, s = (3 if multimask else 1), self.image_size // 4
            return (torch.zeros((0, m, s, s), device=self.device),
                    torch.zeros((0, m), device=self.device))
        _, iou, low_res = p._predict(coords, labels, box, None, multimask, return_logits=True)
        return low_res, iou

    @torch.no_grad()
    def postprocess_masks(self, emb: ImageEmbedding, low_res_logits: Tensor) -> Tensor:
        if low_res_logits.shape[0] == 0:
            return low_res_logits.new_zeros((0, low_res_logits.shape[1], *emb.original_size))
        return self._predictor._transforms.postprocess_masks(low_res_logits, emb.original_size)

    @torch.no_grad()
    def decoder_image_tokens(self, emb: ImageEmbedding, points: Optional[Tensor],
                             point_labels: Optional[Tensor] = None,
                             boxes: Optional[Tensor] = None) -> Tensor:
        n, p, coords, labels, box = self._prepared(emb, boxes, points, point_labels)
        h, w = emb.embedding.shape[-2:]
        if n == 0:
            return torch.zeros((0, emb.embedding.shape[1], h, w), device=self.device)
        with capture_output(self._net.sam_mask_decoder.transformer) as store:
            p._predict(coords, labels, box, None, True, return_logits=True)
        keys = store['output'][1]
        return keys.transpose(1, 2).reshape(keys.shape[0], -1, h, w)
