"""Named SAM refiners of the command-line tools (``--sam lite_medsam|vit_b|vit_l|vit_h``)."""
from typing import Any, Optional

from .lite_medsam import LiteMedSamBackend
from .refiner import SamMaskRefiner
from .segment_anything_backend import SegmentAnythingBackend

SAM_BACKENDS = ('lite_medsam', 'vit_b', 'vit_l', 'vit_h')
#: Prompt defaults per backend: (num_points, use_box, multimask).
PROMPT_DEFAULTS = {'lite_medsam': (0, True, False), 'vit': (3, False, True)}


def build_refiner(backend: str = 'lite_medsam', checkpoint: Optional[str] = None,
                  device: str = 'cpu', num_points: Optional[int] = None,
                  use_box: Optional[bool] = None, multimask: Optional[bool] = None,
                  seed: int = 0, **kwargs: Any) -> SamMaskRefiner:
    """A :class:`SamMaskRefiner` for one of :data:`SAM_BACKENDS`.

    ``None`` prompt options take the backend's defaults (:data:`PROMPT_DEFAULTS`); other
    keyword arguments (``fusion``, ``min_teacher_iou``, ``embed_on`` ...) go to the refiner.
    """
    if backend not in SAM_BACKENDS:
        raise ValueError(f'sam backend must be one of {SAM_BACKENDS}, got {backend!r}')
    if backend == 'lite_medsam':
        sam = LiteMedSamBackend(checkpoint=checkpoint, device=device)
        defaults = PROMPT_DEFAULTS['lite_medsam']
    else:
        if not checkpoint:
            raise ValueError(f'--sam-checkpoint is required for the {backend} backend')
        sam = SegmentAnythingBackend(model_type=backend, checkpoint=checkpoint, device=device)
        defaults = PROMPT_DEFAULTS['vit']
    num_points = defaults[0] if num_points is None else num_points
    use_box = defaults[1] if use_box is None else use_box
    multimask = defaults[2] if multimask is None else multimask
    return SamMaskRefiner(sam, num_points=num_points, use_box=use_box, multimask=multimask,
                          seed=seed, **kwargs)
