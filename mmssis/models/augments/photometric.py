"""The student's strong photometric augmentation, applied to the batch *after* ARP.

In the official S4M code the unlabelled student image is mixed (ARP) from the
geometry-only view and only then strongly augmented, so a pasted instance and its new
background share one photometric draw. In MMDetection the data pipeline runs before the
model, so the paper configs keep the student branch of the pipeline geometry-only and
:class:`SemiMaskDetector` calls this module on the mixed student batch.

The draw follows torchvision's ``RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)``,
``RandomGrayscale(p=0.2)`` and a Gaussian blur with ``sigma ~ U(0.1, 2)`` applied with
``p=0.5`` (the official ``StrongAugmentation``), per image and inside its ``img_shape``
(padding stays untouched), from the module's own seeded generator.
"""
import math
from typing import Optional, Tuple

import torch
import torchvision.transforms.v2.functional as TF
from mmdet.structures import SampleList
from torch import Tensor

from mmssis.models.utils.normalization import view_normalization
from mmssis.registry import MODELS
from mmssis.utils.rank_seed import torch_generator


@MODELS.register_module()
class StudentPhotometricAugment:
    """Per-image colour jitter, grayscale and Gaussian blur on a normalised batch.

    Args:
        brightness: ColorJitter brightness (factor ~ U(1 - b, 1 + b)).
        contrast: ColorJitter contrast.
        saturation: ColorJitter saturation.
        hue: ColorJitter hue (shift ~ U(-h, h)).
        jitter_prob: Probability of the colour jitter (the four ops in random order).
        grayscale_prob: Probability of converting to grayscale (3 channels kept).
        blur_prob: Probability of the Gaussian blur.
        blur_sigma: ``(lo, hi)`` of the uniform blur sigma in pixels; the kernel spans
            ``+-3 sigma``.
        seed: Seed of the draws. Each image of a step draws from a generator derived
            from ``(seed, step, rank, image index)``
            (:func:`~mmssis.utils.rank_seed.torch_generator`): reproducible run to run, per
            rank, and across ``--resume``.
    """

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4,
                 saturation: float = 0.4, hue: float = 0.1, jitter_prob: float = 0.8,
                 grayscale_prob: float = 0.2, blur_prob: float = 0.5,
                 blur_sigma: Tuple[float, float] = (0.1, 2.0), seed: int = 0) -> None:
        for name, p in (('jitter_prob', jitter_prob), ('grayscale_prob', grayscale_prob),
                        ('blur_prob', blur_prob)):
            if not 0 <= p <= 1:
                raise ValueError(f'{name} must be in [0, 1], got {p}')
        if not 0 <= hue <= 0.5:
            raise ValueError(f'hue must be in [0, 0.5], got {hue}')
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.saturation, self.hue = float(saturation), float(hue)
        self.jitter_prob, self.grayscale_prob = float(jitter_prob), float(grayscale_prob)
        self.blur_prob = float(blur_prob)
        self.blur_sigma = (float(blur_sigma[0]), float(blur_sigma[1]))
        self.seed = int(seed)
        self.generator = None  # the current image's generator (set in __call__)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(jitter=({self.brightness}, {self.contrast}, '
                f'{self.saturation}, {self.hue}) p={self.jitter_prob}, '
                f'grayscale p={self.grayscale_prob}, blur sigma={self.blur_sigma} '
                f'p={self.blur_prob})')

    def _uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=self.generator))

    def _coin(self, p: float) -> bool:
        return bool(torch.rand((), generator=self.generator) < p)

    def augment_image(self, rgb: Tensor, generator: Optional[torch.Generator] = None
                      ) -> Tensor:
        """One draw on a ``(3, h, w)`` float RGB image in ``[0, 1]``; returns a new one.

        ``generator``: the draws' generator (``None``: the step's generator of image 0).
        """
        self.generator = generator if generator is not None else \
            torch_generator(self.seed, 'student_augment', 0)
        img = rgb
        if self._coin(self.jitter_prob):
            ops = []
            if self.brightness > 0:
                f = self._uniform(max(0.0, 1 - self.brightness), 1 + self.brightness)
                ops.append(lambda x, f=f: TF.adjust_brightness(x, f))
            if self.contrast > 0:
                f = self._uniform(max(0.0, 1 - self.contrast), 1 + self.contrast)
                ops.append(lambda x, f=f: TF.adjust_contrast(x, f))
            if self.saturation > 0:
                f = self._uniform(max(0.0, 1 - self.saturation), 1 + self.saturation)
                ops.append(lambda x, f=f: TF.adjust_saturation(x, f))
            if self.hue > 0:
                f = self._uniform(-self.hue, self.hue)
                ops.append(lambda x, f=f: TF.adjust_hue(x, f))
            for k in torch.randperm(len(ops), generator=self.generator).tolist():
                img = ops[k](img)
        if self._coin(self.grayscale_prob):
            img = TF.rgb_to_grayscale(img, num_output_channels=3)
        if self._coin(self.blur_prob):
            sigma = self._uniform(*self.blur_sigma)
            radius = max(1, int(math.ceil(3 * sigma)))
            img = TF.gaussian_blur(img, [2 * radius + 1, 2 * radius + 1], [sigma, sigma])
        return img.clamp(0, 1)

    @torch.no_grad()
    def __call__(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                 data_preprocessor) -> Tensor:
        """Augment every image of a normalised batch inside its ``img_shape``.

        Args:
            batch_inputs: ``(B, 3, H_pad, W_pad)`` normalised images, in the channel order
                the preprocessor produced.
            batch_data_samples: ``B`` samples with ``img_shape``.
            data_preprocessor: The detector's (multi-branch) data preprocessor.

        Returns:
            A new ``(B, 3, H_pad, W_pad)`` tensor; padding is copied unchanged.
        """
        norm = view_normalization(data_preprocessor)
        normalize = norm['mean'] is not None
        mean = batch_inputs.new_tensor(norm['mean']).reshape(3, 1, 1) if normalize else None
        std = batch_inputs.new_tensor(norm['std']).reshape(3, 1, 1) if normalize else None
        rgb_order = norm['channels'] == 'rgb'
        out = batch_inputs.clone()
        for i, sample in enumerate(batch_data_samples):
            h, w = sample.metainfo['img_shape'][:2]
            x = batch_inputs[i, :, :h, :w].float()
            if normalize:
                x = x * std + mean
            x = (x if rgb_order else x.flip(0)) / 255.0
            y = self.augment_image(
                x, torch_generator(self.seed, 'student_augment', i)) * 255.0
            # Round to uint8 levels, as the official code re-quantises through PIL.
            y = y.round()
            y = y if rgb_order else y.flip(0)
            if normalize:
                y = (y - mean) / std
            out[i, :, :h, :w] = y.to(out.dtype)
        return out
