"""How a detector's preprocessed images are normalised (to turn them back into pixels)."""
from typing import Any, Dict


def view_normalization(data_preprocessor) -> Dict[str, Any]:
    """``mean`` / ``std`` / ``channels`` of a detector's preprocessed images, the keyword
    arguments of :func:`mmssis.structures.denormalize_views` /
    :func:`mmssis.structures.normalize_views`.

    mmengine's ``ImgDataPreprocessor`` keeps whether it normalises and flips BGR -> RGB in
    private attributes only (``_enable_normalize``, ``_channel_conversion``); this is the one
    place in mmssis that reads them.

    Args:
        data_preprocessor: ``DetDataPreprocessor`` or ``MultiBranchDataPreprocessor``.
    """
    pre = getattr(data_preprocessor, 'data_preprocessor', data_preprocessor)
    if pre is None or not hasattr(pre, '_enable_normalize'):
        raise ValueError(f'view_normalization needs the detector\'s data preprocessor (mean / '
                         f'std / channel order of its batch), got {type(pre).__name__}')
    normalised = bool(getattr(pre, '_enable_normalize', False))
    # mmcv loads BGR; the preprocessor flips to RGB only with bgr_to_rgb=True.
    rgb = bool(getattr(pre, '_channel_conversion', False))
    return dict(mean=pre.mean.flatten().tolist() if normalised else None,
                std=pre.std.flatten().tolist() if normalised else None,
                channels='rgb' if rgb else 'bgr')
