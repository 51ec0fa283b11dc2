"""The image-encoder output of one image: :class:`ImageEmbedding` (shared by the SAM
backends and the embedding cache)."""
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple, Union

import torch
from mmengine.utils import apply_to
from torch import Tensor


@dataclass
class ImageEmbedding:
    """The image-encoder output of one image plus the geometry needed to decode it.

    Attributes:
        embedding: Image embedding, shape ``(1, C, h, w)`` (``C=256, h=w=64`` for
            SAM and LiteMedSAM).
        original_size: ``(H, W)`` of the image given to ``encode`` (the original
            image frame, in which prompts and output masks are expressed).
        input_size: ``(h', w')`` of the image after ``ResizeLongestSide`` and
            before padding to the square model input.
        extras: Backend-specific additional tensors (e.g. SAM 2's high-resolution
            features). Tensors or (nested) lists/dicts of tensors only.
    """

    embedding: Tensor
    original_size: Tuple[int, int]
    input_size: Tuple[int, int]
    extras: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.embedding.dim() != 4 or self.embedding.shape[0] != 1:
            raise ValueError('ImageEmbedding.embedding must have shape (1, C, h, w), got '
                             f'{tuple(self.embedding.shape)}')
        self.original_size = (int(self.original_size[0]), int(self.original_size[1]))
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))

    @property
    def device(self) -> torch.device:
        return self.embedding.device

    @property
    def nbytes(self) -> int:
        """Memory taken by all tensors of this embedding, in bytes."""
        sizes = []
        apply_to(self.extras, lambda x: isinstance(x, Tensor),
                 lambda t: sizes.append(t.numel() * t.element_size()))
        return sum(sizes) + self.embedding.numel() * self.embedding.element_size()

    def to(self, device: Union[str, torch.device, None] = None,
           dtype: Optional[torch.dtype] = None) -> 'ImageEmbedding':
        """Returns a copy with every tensor moved to ``device`` / cast to ``dtype``.

        Returns ``self`` when nothing changes.
        """
        same_dev = device is None or torch.device(device) == self.embedding.device
        same_dtype = dtype is None or dtype == self.embedding.dtype
        if same_dev and same_dtype:
            return self
        return ImageEmbedding(
            embedding=self.embedding.to(device=device, dtype=dtype),
            original_size=self.original_size,
            input_size=self.input_size,
            extras=apply_to(self.extras, lambda x: isinstance(x, Tensor),
                            lambda t: t.to(device=device, dtype=dtype)))

    def cpu(self) -> 'ImageEmbedding':
        return self.to('cpu')

