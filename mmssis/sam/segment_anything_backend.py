"""Original SAM (ViT-B/L/H) built through ``segment_anything.sam_model_registry``."""
from __future__ import annotations

import os
from typing import Any, Optional, Union

import torch
from segment_anything import sam_model_registry

from mmssis.registry import MODELS
from .checkpoint import load_sam_weights, missing_checkpoint_error
from .sam_model import SamModelBackend

__all__ = ['SegmentAnythingBackend']


@MODELS.register_module()
class SegmentAnythingBackend(SamModelBackend):
    """Meta's Segment Anything (1024-px input, ImageNet pixel statistics).

    The network is built by ``segment_anything.sam_model_registry[model_type]``
    without weights; the checkpoint is then loaded strictly with
    ``torch.load(weights_only=True)`` (the registry's own loader is not
    ``weights_only``).

    Args:
        model_type: ``'vit_b'``, ``'vit_l'`` or ``'vit_h'``.
        checkpoint: Path of the official ``sam_vit_*.pth`` file.
        device: Device to keep the network on; ``None`` (default) follows the detector's
            device (built on the CPU).
        max_prompts_per_call: See :class:`SamModelBackend` (default: one call).
        decoder_dtype: See :class:`SamModelBackend` (default: float32).

    Raises:
        ValueError: Unknown ``model_type``.
        FileNotFoundError: ``checkpoint`` does not exist.
        SamCheckpointError: ``checkpoint`` holds another architecture's weights.
    """

    MODEL_TYPES = ('vit_b', 'vit_l', 'vit_h')

    def __init__(self, model_type: str = 'vit_b', checkpoint: str = '',
                 device: Union[str, torch.device, None] = None,
                 max_prompts_per_call: Optional[int] = None,
                 decoder_dtype: Optional[str] = None) -> None:
        if model_type not in self.MODEL_TYPES:
            raise ValueError(f'model_type must be one of {self.MODEL_TYPES}, got {model_type!r}')
        expected = f'segment-anything SAM {model_type}'
        if not checkpoint or not os.path.isfile(checkpoint):
            raise missing_checkpoint_error(checkpoint, expected)
        sam = sam_model_registry[model_type](checkpoint=None)
        load_sam_weights(sam, checkpoint, expected)
        super().__init__(sam, requires_box=False, device=device,
                         name=f'sam_{model_type}:{os.path.basename(checkpoint)}',
                         max_prompts_per_call=max_prompts_per_call,
                         decoder_dtype=decoder_dtype)
        self.model_type = model_type
        self.checkpoint = checkpoint

