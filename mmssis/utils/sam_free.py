"""Build a model for evaluation / export without its SAM parts.

SAM is a training-time tool in mmssis: stage 1 distils it into the detector
(``SamDistillMaskRCNN`` / ``SamDistillMask2Former`` with ``distill=...``), stage 2 refines
the teacher's pseudo-masks with it (``model.semi_train_cfg.sam_refiner``). Neither is part
of a checkpoint and neither takes part in inference, yet building the model from the
training config would build SAM and load its checkpoint. ``tools/test.py`` and
``tools/model_converters/export_student.py`` call :func:`strip_sam_for_eval` before they
build (or convert) the model, so evaluating or exporting a student needs no SAM checkpoint.
"""
from typing import Any, List, Optional, Tuple

SAM_NOT_NEEDED = 'SAM is not needed for evaluation'

#: Model-config keys that hold a SAM part (the value is replaced by ``None``):
#: ``semi_train_cfg.sam_refiner`` (stage-2 pseudo-mask refinement) and the stage-1
#: detectors' ``distill`` (structural distillation from SAM).
_SEMI_KEY, _REFINER_KEY, _DISTILL_KEY = 'semi_train_cfg', 'sam_refiner', 'distill'


def _checkpoints(value: Any) -> List[str]:
    """The ``checkpoint`` paths named anywhere inside ``value``."""
    found = []
    if isinstance(value, dict):
        for key, sub in value.items():
            if key == 'checkpoint' and isinstance(sub, str) and sub:
                found.append(sub)
            else:
                found += _checkpoints(sub)
    elif isinstance(value, (list, tuple)):
        for sub in value:
            found += _checkpoints(sub)
    return found


def _strip(node: Any, path: str, removed: List[Tuple[str, List[str]]]) -> None:
    if isinstance(node, (list, tuple)):
        for i, sub in enumerate(node):
            _strip(sub, f'{path}[{i}]', removed)
        return
    if not isinstance(node, dict):
        return
    semi = node.get(_SEMI_KEY)
    if isinstance(semi, dict) and semi.get(_REFINER_KEY):
        removed.append((f'{path}.{_SEMI_KEY}.{_REFINER_KEY}',
                        _checkpoints(semi[_REFINER_KEY])))
        semi[_REFINER_KEY] = None
    if isinstance(node.get(_DISTILL_KEY), dict):
        removed.append((f'{path}.{_DISTILL_KEY}', _checkpoints(node[_DISTILL_KEY])))
        node[_DISTILL_KEY] = None
    for key, sub in node.items():
        if key != _SEMI_KEY:
            _strip(sub, f'{path}.{key}', removed)


def strip_sam_for_eval(cfg: Any) -> List[Tuple[str, List[str]]]:
    """Remove the SAM parts from ``cfg.model`` in place (they only act in training).

    The stripped model has the same ``state_dict`` (SAM is never part of it) and predicts
    exactly the same: ``SemiMaskDetector`` without ``sam_refiner`` and a ``SamDistill*``
    detector with ``distill=None`` are the plain models.

    Args:
        cfg: A config (``mmengine.Config`` or dict) with a ``model`` entry.

    Returns:
        ``[(config key, [SAM checkpoint paths it named]), ...]`` of what was removed,
        empty when the model has no SAM part.
    """
    removed: List[Tuple[str, List[str]]] = []
    model = cfg.get('model') if hasattr(cfg, 'get') else None
    if model is not None:
        _strip(model, 'model', removed)
    return removed


def sam_free_message(removed: List[Tuple[str, List[str]]]) -> Optional[str]:
    """A one-line log message for :func:`strip_sam_for_eval`'s result (None: nothing)."""
    if not removed:
        return None
    parts = []
    for key, ckpts in removed:
        parts.append(key + (f' (checkpoint {", ".join(repr(c) for c in ckpts)} not loaded)'
                            if ckpts else ''))
    return (f'{SAM_NOT_NEEDED}: the model is built without {"; ".join(parts)}. SAM only '
            'refines pseudo-labels / distils features in training and is never part of a '
            'checkpoint; the predictions are those of the full model.')
