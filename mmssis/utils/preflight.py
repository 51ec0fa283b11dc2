"""Pre-flight checks of a training config: a wrong setup stops before iteration 0.

Each check turns a setup that mmengine/mmdet would train on silently (or fail on deep inside
the first iteration) into a :class:`SetupError` naming the config key or file and the fix:

* a stage-2 (teacher-student) config without the stage-1 checkpoint (``load_from``): the
  teacher would be untrained and pseudo-label noise for the whole run
  (:func:`check_teacher_checkpoint`; opt out with ``allow_untrained_teacher = True``);
* a stage-1 checkpoint whose classifier has another class count than the stage-2 config:
  mmengine reports a "size mismatch", skips the weights and trains on with random teacher
  class heads (:func:`check_checkpoint_classes`);
* ``--cfg-options custom_data.*``: the configs in ``configs/custom/`` derive their data sets
  from ``custom_data`` when the file is parsed, so the option changes nothing
  (:func:`check_cfg_options`);
* the detector's class count differing from the data sets' ``metainfo.classes``: mmdet
  fails with an ``IndexError`` in the mask loss at iteration 1, or trains the wrong number
  of classes (:func:`check_class_counts`).

:func:`check_before_training` runs them all; ``tools/train.py`` calls it after the config is
merged, before the runner (work dir, model, data) is built. Data checks that need the
annotation files (categories not in ``classes``, annotations without ``bbox``, a labelled
set left empty by filtering) live in :class:`~mmssis.datasets.CheckedCocoDataset`; unknown
``semi_train_cfg`` keys are rejected when ``SemiMaskDetector`` is built.
"""
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .sampler_check import _get, _type_name

__all__ = ['SetupError', 'check_before_training', 'check_cfg_options',
           'check_teacher_checkpoint', 'check_checkpoint_classes', 'check_class_counts',
           'detector_class_counts', 'checkpoint_class_count', 'dataset_classes',
           'is_stage2', 'ALLOW_UNTRAINED_TEACHER']

#: Top-level config switch that lets a stage-2 config train from a random teacher.
ALLOW_UNTRAINED_TEACHER = 'allow_untrained_teacher'

# Wrapper datasets whose inner data set(s) carry the classes.
_WRAPPED_KEYS = ('datasets', 'dataset')
# Classifier weights of a checkpoint and the class count they encode (rows - 1).
_CLASSIFIER_KEYS = ('roi_head.bbox_head.fc_cls.weight', 'panoptic_head.cls_embed.weight')


class SetupError(ValueError):
    """The training setup (config, checkpoint or data) can not train as intended."""


def is_stage2(cfg: Any) -> bool:
    """Whether the config trains a teacher-student model (stage 2).

    Args:
        cfg: The full config.

    Returns:
        True for ``SemiMaskDetector`` and any model with a ``detector`` and a
        ``semi_train_cfg`` (mmdet's semi-supervised detectors).
    """
    model = _get(cfg, 'model') or {}
    return (_type_name(model) == 'SemiMaskDetector'
            or (_get(model, 'detector') is not None
                and _get(model, 'semi_train_cfg') is not None))


def _detector(cfg: Any) -> Tuple[Any, str]:
    """The (student/teacher) detector config and its key path."""
    model = _get(cfg, 'model') or {}
    if _get(model, 'detector') is not None:
        return _get(model, 'detector'), 'model.detector'
    return model, 'model'


# ---------------------------------------------------------------------------------------
# --cfg-options
def check_cfg_options(cfg_options: Optional[Dict[str, Any]]) -> None:
    """Reject ``--cfg-options`` keys that are read only while the config file is parsed.

    Args:
        cfg_options: The ``--cfg-options`` of ``tools/train.py`` (``key=value`` pairs).

    Raises:
        SetupError: For ``custom_data.*`` keys, naming them and saying what to edit.
    """
    keys = sorted(k for k in (cfg_options or {})
                  if k == 'custom_data' or k.startswith('custom_data.'))
    if keys:
        raise SetupError(
            f'--cfg-options {", ".join(keys)} changes nothing: the configs in '
            'configs/custom/ derive the class count, the data sets and the evaluator from '
            '`custom_data` while the config file is parsed, before --cfg-options apply. '
            'Edit `custom_data` in configs/custom/custom_data.py instead (or a copy of it '
            "that your config's `_base_` points at).")


# ---------------------------------------------------------------------------------------
# class counts of the detector and the data sets
def detector_class_counts(cfg: Any) -> List[Tuple[str, int]]:
    """The class counts the detector config declares, with their keys.

    Mask R-CNN: ``roi_head.bbox_head.num_classes`` and ``roi_head.mask_head.num_classes``;
    Mask2Former: ``panoptic_head.num_things_classes`` and
    ``panoptic_fusion_head.num_things_classes``. For a teacher-student model the keys are
    those of ``model.detector``.

    Args:
        cfg: The full config.

    Returns:
        ``[(key, count), ...]``; empty when the model declares none of these keys.
    """
    det, prefix = _detector(cfg)
    found: List[Tuple[str, int]] = []
    roi = _get(det, 'roi_head') or {}
    for head in ('bbox_head', 'mask_head'):
        part = _get(roi, head)
        parts = part if isinstance(part, (list, tuple)) else [part]
        for i, sub in enumerate(parts):
            num = _get(sub, 'num_classes') if sub is not None else None
            if isinstance(num, int):
                idx = f'[{i}]' if isinstance(part, (list, tuple)) else ''
                found.append((f'{prefix}.roi_head.{head}{idx}.num_classes', num))
    for head in ('panoptic_head', 'panoptic_fusion_head'):
        num = _get(_get(det, head) or {}, 'num_things_classes')
        if isinstance(num, int):
            found.append((f'{prefix}.{head}.num_things_classes', num))
    return found


def _check_class_weight(cfg: Any) -> None:
    """Mask2Former: ``len(loss_cls.class_weight)`` must be things + stuff + 1."""
    det, prefix = _detector(cfg)
    head = _get(det, 'panoptic_head')
    if head is None:
        return
    things = _get(head, 'num_things_classes')
    stuff = _get(head, 'num_stuff_classes', 0) or 0
    weight = _get(_get(head, 'loss_cls') or {}, 'class_weight')
    if not isinstance(things, int) or not isinstance(weight, (list, tuple)):
        return
    if len(weight) != things + stuff + 1:
        raise SetupError(
            f'{prefix}.panoptic_head.loss_cls.class_weight has {len(weight)} entries but '
            f'{prefix}.panoptic_head has num_things_classes={things} + num_stuff_classes='
            f'{stuff} classes: it needs {things + stuff + 1} (one per class, then the '
            f'no-object weight), e.g. class_weight=[1.0] * {things + stuff} + [0.1].')


def _iter_datasets(node: Any, path: str) -> Iterator[Tuple[str, Any]]:
    """Leaf data set configs under ``node`` (wrappers such as ConcatDataset unrolled)."""
    if not isinstance(node, dict):
        return
    inner = [(k, _get(node, k)) for k in _WRAPPED_KEYS if _get(node, k) is not None]
    if not inner:
        yield path, node
        return
    for key, value in inner:
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                yield from _iter_datasets(item, f'{path}.{key}[{i}]')
        else:
            yield from _iter_datasets(value, f'{path}.{key}')


def dataset_classes(ds_cfg: Any, scope: Optional[str] = 'mmssis') -> Optional[Tuple[str, ...]]:
    """The class names a data set config trains/evaluates with.

    Args:
        ds_cfg: One data set config.
        scope: Registry scope used to find the data set's default ``METAINFO``.

    Returns:
        ``metainfo.classes`` of the config, else the data set class' default (e.g. the 80
        COCO classes of ``CocoDataset``), else None when unknown.
    """
    classes = _get(_get(ds_cfg, 'metainfo') or {}, 'classes')
    if classes is not None:
        return tuple(classes)
    typ = _get(ds_cfg, 'type')
    if not isinstance(typ, str):
        default = getattr(typ, 'METAINFO', None) if typ is not None else None
    else:
        from mmssis.registry import DATASETS
        try:
            with DATASETS.switch_scope_and_registry(_get(ds_cfg, '_scope_', scope)) as reg:
                found = reg.get(typ)
        except Exception:  # unknown scope / type: the runner reports it when it builds
            found = None
        default = getattr(found, 'METAINFO', None)
    classes = (default or {}).get('classes') if isinstance(default, dict) else None
    return tuple(classes) if classes is not None else None


def check_class_counts(cfg: Any) -> None:
    """The detector's class count must equal ``len(metainfo.classes)`` of every train, val
    and test data set.

    Args:
        cfg: The full config.

    Raises:
        SetupError: Naming both numbers, the detector key, the data set key and the fix.
    """
    _check_class_weight(cfg)
    counts = detector_class_counts(cfg)
    if not counts:
        return
    det_key, det_num = counts[0]
    for key, num in counts[1:]:
        if num != det_num:
            raise SetupError(
                f'{key}={num} but {det_key}={det_num}: every head of the detector needs the '
                'same class count (the number of metainfo.classes of the data sets).')
    scope = _get(cfg, 'default_scope', 'mmssis')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = _get(_get(cfg, loader) or {}, 'dataset')
        for path, ds in _iter_datasets(dataset, f'{loader}.dataset'):
            classes = dataset_classes(ds, scope)
            if classes is None or len(classes) == det_num:
                continue
            where = ('metainfo.classes' if _get(_get(ds, 'metainfo') or {}, 'classes')
                     is not None else f'the default classes of {_type_name(ds)}')
            shown = (str(list(classes)) if len(classes) <= 8
                     else f'{str(list(classes[:8]))[:-1]}, ...] ({len(classes)} names)')
            keys = ', '.join(k for k, _ in counts)
            raise SetupError(
                f'the detector has {det_num} classes ({keys}) but {path} has '
                f'{len(classes)} ({where}: {shown}). mmdet would fail with an IndexError '
                f'in the mask loss at the first iteration (or train the wrong classes). '
                f'Set {keys} to {len(classes)}, or list the {det_num} classes in the '
                f'data sets\' metainfo=dict(classes=(...)).')


# ---------------------------------------------------------------------------------------
# the stage-2 teacher
def _is_local_path(path: str) -> bool:
    return '://' not in path


def checkpoint_class_count(path: str) -> Optional[Tuple[str, int]]:
    """The class count a checkpoint's classifier was trained for.

    Reads the checkpoint with the weights-only loader. Mask R-CNN:
    ``roi_head.bbox_head.fc_cls.weight`` has num_classes + 1 rows; Mask2Former:
    ``panoptic_head.cls_embed.weight`` has things + stuff + 1 rows. Keys may carry a
    ``teacher.`` / ``student.`` (stage-2) or ``module.`` prefix; the teacher's win.

    Args:
        path: Local checkpoint file.

    Returns:
        ``(state-dict key, class count)``, or None when no known classifier is in it.
    """
    from mmssis.utils.checkpoint import load_checkpoint_file
    ckpt = load_checkpoint_file(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    if not isinstance(state, dict):
        return None
    best: Optional[Tuple[int, str, int]] = None
    for key, value in state.items():
        if not isinstance(key, str) or not hasattr(value, 'shape') or len(value.shape) < 1:
            continue
        name = key[len('module.'):] if key.startswith('module.') else key
        rank = 0 if name.startswith('teacher.') else 2 if name.startswith('student.') else 1
        if rank != 1:
            name = name.split('.', 1)[1]
        if name in _CLASSIFIER_KEYS and (best is None or rank < best[0]):
            best = (rank, key, int(value.shape[0]) - 1)
    return None if best is None else (best[1], best[2])


def _config_classifier_count(cfg: Any) -> Optional[Tuple[str, int]]:
    """The class count the config's classifier has (what the checkpoint must match)."""
    det, prefix = _detector(cfg)
    bbox_head = _get(_get(det, 'roi_head') or {}, 'bbox_head')
    num = _get(bbox_head, 'num_classes') if isinstance(bbox_head, dict) else None
    if isinstance(num, int):
        return f'{prefix}.roi_head.bbox_head.num_classes', num
    head = _get(det, 'panoptic_head')
    things = _get(head or {}, 'num_things_classes')
    if isinstance(things, int):
        stuff = _get(head, 'num_stuff_classes', 0) or 0
        key = f'{prefix}.panoptic_head.num_things_classes'
        return (key + (' + num_stuff_classes' if stuff else ''), things + stuff)
    return None


def check_checkpoint_classes(cfg: Any, checkpoint: str) -> None:
    """The stage-1 checkpoint's classifier must have the class count of the config.

    Args:
        cfg: The full (stage-2) config.
        checkpoint: Local checkpoint file (``load_from``).

    Raises:
        SetupError: Naming the file, both class counts and the fix.
    """
    expected = _config_classifier_count(cfg)
    if expected is None:
        return
    found = checkpoint_class_count(checkpoint)
    if found is None:
        return
    key, num = expected
    ckpt_key, ckpt_num = found
    if ckpt_num != num:
        raise SetupError(
            f'load_from={checkpoint}: the checkpoint was trained for {ckpt_num} classes '
            f'({ckpt_key} has {ckpt_num + 1} rows) but this config has {num} ({key}). '
            'mmengine would only warn "size mismatch", skip those weights and let a '
            'teacher with random class heads pseudo-label. Use the stage-1 checkpoint '
            'trained on the same classes (the same metainfo.classes and num_classes), or '
            f'set the config to {ckpt_num} classes if that checkpoint is the right one.')


def check_teacher_checkpoint(cfg: Any, resume: Optional[str] = None) -> None:
    """A stage-2 config needs the stage-1 checkpoint as its teacher.

    Args:
        cfg: The full config (before ``--resume`` is applied to it).
        resume: ``tools/train.py``'s ``--resume``: None (not given), ``'auto'`` or a path.

    Raises:
        SetupError: No ``load_from`` and nothing to resume in a stage-2 config (unless
            ``allow_untrained_teacher = True``); a local ``load_from`` that does not exist;
            a ``load_from`` whose class count differs from the config.
    """
    if not is_stage2(cfg):
        return
    if resume is not None and resume != 'auto':
        return  # resuming a given checkpoint (tools/train.py checks that it exists)
    # `--resume` without a path resumes the work dir's latest checkpoint and drops load_from.
    load_from = None if resume == 'auto' else _get(cfg, 'load_from')
    if not load_from and _get(cfg, ALLOW_UNTRAINED_TEACHER, False):
        return
    resuming = resume == 'auto' or bool(_get(cfg, 'resume', False))
    if resuming and not load_from:
        from mmengine.runner import find_latest_checkpoint
        work_dir = _get(cfg, 'work_dir')
        if work_dir and find_latest_checkpoint(work_dir):
            return
    if load_from:
        if _is_local_path(str(load_from)):
            if not osp.isfile(osp.expanduser(str(load_from))):
                raise SetupError(
                    f'load_from={load_from}: no such file. Stage 2 loads its teacher from the '
                    'stage-1 checkpoint: pass an existing one with '
                    '`--cfg-options load_from=<stage-1 .pth>`.')
            check_checkpoint_classes(cfg, osp.expanduser(str(load_from)))
        return
    model_type = _get(_get(cfg, 'model') or {}, 'type')
    extra = (f' (--resume found no checkpoint in {_get(cfg, "work_dir")}; without a path '
             'it ignores load_from)' if resuming else '')
    raise SetupError(
        f'model.type={model_type} is a stage-2 (teacher-student) config but load_from is '
        f'not set and nothing is resumed{extra}: the teacher would be untrained and '
        'pseudo-label noise for the whole run. Stage 2 needs the stage-1 checkpoint as '
        'teacher: `--cfg-options load_from=<stage-1 .pth>` (e.g. work_dirs/<stage-1 config>/'
        f'iter_N.pth). To train from a random teacher on purpose (tests, smoke runs), set '
        f'`{ALLOW_UNTRAINED_TEACHER} = True` in the config (or `--cfg-options '
        f'{ALLOW_UNTRAINED_TEACHER}=True`).')


# ---------------------------------------------------------------------------------------
def check_before_training(cfg: Any, cfg_options: Optional[Dict[str, Any]] = None,
                          resume: Optional[str] = None) -> None:
    """Every config-level pre-flight check of ``tools/train.py``, before the runner exists.

    Args:
        cfg: The merged config.
        cfg_options: The ``--cfg-options`` given on the command line.
        resume: ``--resume``: None, ``'auto'`` or a checkpoint path.

    Raises:
        SetupError: The first problem found, naming the key or file and the fix.
    """
    check_cfg_options(cfg_options)
    check_class_counts(cfg)
    check_teacher_checkpoint(cfg, resume=resume)
