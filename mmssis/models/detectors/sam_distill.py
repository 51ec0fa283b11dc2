"""Stage-1 detectors with S4M's SAM structural distillation as an extra loss.

``SamDistillMaskRCNN`` / ``SamDistillMask2Former`` are mmdet's ``MaskRCNN`` /
``Mask2Former`` plus ``loss_sam_distill`` (see
:mod:`mmssis.models.losses.structural_distill`). Their ``state_dict`` is exactly the base
detector's (SAM is held outside the module tree), so a stage-1 checkpoint loads into plain
mmdet configs and into :class:`SemiMaskDetector` teachers unchanged.
"""
from typing import Dict, Optional

from mmdet.models.detectors import Mask2Former, MaskRCNN
from mmdet.structures import SampleList
from torch import Tensor, nn

from mmssis.registry import MODELS
from mmssis.utils.rank_seed import reseed_global_torch, run_seed


class SamDistillMixin:
    """Adds ``loss_sam_distill`` computed on a dense feature map captured by a hook.

    Subclasses name the module whose forward output carries the dense features
    (``_distill_module``) and how to pick the (B, C, H, W) map from it
    (``_distill_feature``).
    """

    def _init_distiller(self, distill: Optional[dict]) -> None:
        # Not an nn.Module attribute: SAM stays out of state_dict / optimizer / EMA.
        object.__setattr__(self, '_distiller',
                           MODELS.build(distill) if isinstance(distill, dict) else distill)
        self._run_seed = run_seed()  # mmengine seeds torch before building the model

    @property
    def distiller(self):
        return self._distiller

    def _distill_module(self) -> nn.Module:
        raise NotImplementedError

    @staticmethod
    def _distill_feature(output) -> Tensor:
        raise NotImplementedError

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """The base detector's losses plus ``loss_sam_distill`` when a distiller is set."""
        # mmdet's samplers draw from torch's global generator: seeded from the step (exact
        # --resume without generator state).
        reseed_global_torch(self._run_seed)
        if self._distiller is None:
            return super().loss(batch_inputs, batch_data_samples)
        captured = {}

        def hook(_module, _inputs, output):
            captured['feat'] = self._distill_feature(output)

        handle = self._distill_module().register_forward_hook(hook)
        try:
            losses = super().loss(batch_inputs, batch_data_samples)
        finally:
            handle.remove()
        losses.update(self._distiller.loss(captured['feat'], batch_data_samples, batch_inputs,
                                           self.data_preprocessor))
        return losses


@MODELS.register_module()
class SamDistillMaskRCNN(SamDistillMixin, MaskRCNN):
    """Mask R-CNN with SAM structural distillation on the finest FPN level.

    Args:
        distill: Config of a :class:`SamStructuralDistiller` (None: plain Mask R-CNN).
        **kwargs: ``MaskRCNN`` arguments.
    """

    def __init__(self, *args, distill: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_distiller(distill)

    def _distill_module(self) -> nn.Module:
        return self.neck if self.with_neck else self.backbone

    @staticmethod
    def _distill_feature(output) -> Tensor:
        return output[0]


@MODELS.register_module()
class SamDistillMask2Former(SamDistillMixin, Mask2Former):
    """Mask2Former with SAM structural distillation on the pixel decoder's mask features.

    Args:
        distill: Config of a :class:`SamStructuralDistiller` (None: plain Mask2Former).
        **kwargs: ``Mask2Former`` arguments.
    """

    def __init__(self, *args, distill: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_distiller(distill)

    def _distill_module(self) -> nn.Module:
        return self.panoptic_head.pixel_decoder

    @staticmethod
    def _distill_feature(output) -> Tensor:
        # MSDeformAttnPixelDecoder returns (mask_features, multi_scale_features).
        return output[0]
