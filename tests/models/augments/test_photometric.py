"""StudentPhotometricAugment: the official strong augmentation on the mixed student batch."""
import pytest
import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.structures import DetDataSample

from mmssis.models.augments import StudentPhotometricAugment

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def _batch(shapes=((40, 48), (32, 48)), pad=(48, 48), seed=0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (len(shapes), 3, *pad), generator=g).float()
    pre = DetDataPreprocessor(mean=MEAN, std=STD, bgr_to_rgb=True)
    x = (rgb - pre.mean) / pre.std
    samples = [DetDataSample(metainfo=dict(img_shape=s)) for s in shapes]
    return x, samples, pre, rgb


def _rgb(x, pre):
    return x * pre.std + pre.mean


def test_no_op_when_every_probability_is_zero():
    x, samples, pre, rgb = _batch()
    aug = StudentPhotometricAugment(jitter_prob=0, grayscale_prob=0, blur_prob=0)
    out = aug(x, samples, pre)
    torch.testing.assert_close(_rgb(out, pre), rgb, atol=1e-3, rtol=0)


def test_grayscale_inside_img_shape_and_padding_untouched():
    x, samples, pre, _ = _batch()
    aug = StudentPhotometricAugment(jitter_prob=0, grayscale_prob=1, blur_prob=0)
    out = aug(x, samples, pre)
    for i, s in enumerate(samples):
        h, w = s.img_shape
        img = _rgb(out[i, :, :h, :w], pre)
        torch.testing.assert_close(img[0], img[1], atol=1e-3, rtol=0)
        torch.testing.assert_close(img[1], img[2], atol=1e-3, rtol=0)
        assert torch.equal(out[i, :, h:], x[i, :, h:]) and torch.equal(out[i, :, :, w:],
                                                                          x[i, :, :, w:])


def test_blur_smooths_and_jitter_changes_colours():
    x, samples, pre, rgb = _batch()
    blur = StudentPhotometricAugment(jitter_prob=0, grayscale_prob=0, blur_prob=1,
                                     blur_sigma=(1.5, 2.0))(x, samples, pre)
    h, w = samples[0].img_shape
    tv = lambda im: (im[:, 1:, :] - im[:, :-1, :]).abs().mean()  # noqa: E731
    assert tv(_rgb(blur[0, :, :h, :w], pre)) < 0.5 * tv(rgb[0, :, :h, :w])
    jit = StudentPhotometricAugment(jitter_prob=1, grayscale_prob=0, blur_prob=0)(
        x, samples, pre)
    assert (_rgb(jit[0, :, :h, :w], pre) - rgb[0, :, :h, :w]).abs().mean() > 1.0


def test_one_draw_per_image_shared_by_pasted_instance_and_background():
    """Brightness only: every pixel of an image is scaled by the same factor."""
    x, samples, pre, rgb = _batch(shapes=((48, 48), (48, 48)))
    aug = StudentPhotometricAugment(contrast=0, saturation=0, hue=0, jitter_prob=1,
                                    grayscale_prob=0, blur_prob=0)
    out = _rgb(aug(x, samples, pre), pre)
    for i in range(2):
        ok = (rgb[i] > 20) & (out[i] < 250)
        ratio = out[i][ok] / rgb[i][ok]
        assert ratio.std() < 0.02  # one factor for the whole image (up to rounding)


def test_seeded_and_reproducible_and_validated():
    x, samples, pre, _ = _batch()
    a = StudentPhotometricAugment(seed=3)(x, samples, pre)
    b = StudentPhotometricAugment(seed=3)(x, samples, pre)
    c = StudentPhotometricAugment(seed=4)(x, samples, pre)
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError):
        StudentPhotometricAugment(blur_prob=1.5)
    with pytest.raises(ValueError, match='preprocessor'):
        StudentPhotometricAugment()(x, samples, None)
