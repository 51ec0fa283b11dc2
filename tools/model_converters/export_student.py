"""Export one network of a semi-supervised checkpoint as a plain MMDetection model.

A ``SemiMaskDetector`` checkpoint holds two detectors (``student.*`` and ``teacher.*``
keys; SAM is never part of it). This tool writes

* ``OUT``: ``{'state_dict': <the chosen network, prefix removed>, 'meta': {...}}`` with a
  minimal meta (``dataset_meta`` for class names, the mmdet version, where it came from);
* ``<OUT without extension>.py``: a plain mmdet config for it, derived from the semi
  config (the optional third argument, else the config text the runner stored in the
  checkpoint meta): the
  ``detector`` becomes ``model`` (with its data preprocessor), ``default_scope='mmdet'``,
  test/val loops are mmengine's ``TestLoop``/``ValLoop``, and every mmssis type is replaced
  by its closest MMDetection ancestor (``CheckedCocoDataset`` -> ``CocoDataset``,
  arguments the ancestor does not take dropped). mmssis types without an mmdet ancestor
  (e.g. ``mmssis.EfficientNetLite``) stay and are loaded through ``custom_imports``;

so that MMDetection's own ``tools/test.py`` evaluates it::

    python tools/model_converters/export_student.py work_dirs/semi/iter_300.pth \\
        work_dirs/semi/student.pth \\
        configs/demo/gd_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py --which student
    MMDET=$(python -c 'import mmdet, os; print(os.path.dirname(mmdet.__file__))')
    PYTHONPATH=. python $MMDET/.mim/tools/test.py work_dirs/semi/student.py \\
        work_dirs/semi/student.pth

A model of mmdet types only (the paper and custom configs: ResNet, FPN, Mask R-CNN,
Mask2Former) exports to a config mmdet alone loads. The demo models' EfficientNet-Lite0
backbone has no mmdet counterpart: their exported config imports mmssis through
``custom_imports`` (the tool says which case it wrote; the ``PYTHONPATH`` above makes the
repository's copy of mmssis win).
"""
from __future__ import annotations

import argparse
import copy
import inspect
import os
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import torch
from mmengine.config import Config

PREFIXES = ('student.', 'teacher.')
#: Module names that would indicate SAM weights (SAM must never be part of a checkpoint).
SAM_MODULE_NAMES = frozenset({'sam', '_sam', 'sam_refiner', '_sam_refiner', 'sam_model'})
#: Top-level config entries copied unchanged (after type conversion) into the plain config.
RUNTIME_KEYS = ('default_hooks', 'env_cfg', 'log_processor', 'log_level', 'visualizer',
                'backend_args', 'randomness')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export the student (or teacher) of a semi checkpoint for mmdet')
    parser.add_argument('checkpoint', help='SemiMaskDetector checkpoint (student./teacher.)')
    parser.add_argument('out', help='output checkpoint path (.pth)')
    parser.add_argument('config', nargs='?', default=None,
                        help='the semi config (default: the config text stored in the '
                        'checkpoint meta by the runner)')
    parser.add_argument('--which', choices=['student', 'teacher'], default='student')
    # the earlier spelling, kept so existing commands run
    parser.add_argument('--config', dest='config_opt', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.config_opt:
        if args.config:
            parser.error('give the config once (positional)')
        args.config = args.config_opt
    return args


# ----------------------------------------------------------------------------------------
# checkpoint
def _load(path: str) -> Dict[str, Any]:
    # Safe (weights_only) loading with mmengine's meta types allow-listed.
    from mmssis.utils import load_checkpoint_file
    ckpt = load_checkpoint_file(path, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise TypeError(f'{path}: expected a checkpoint dict, got {type(ckpt).__name__}')
    return ckpt


def network_state_dict(state_dict: Dict[str, torch.Tensor], which: str = 'student'
                       ) -> 'OrderedDict[str, torch.Tensor]':
    """The state dict of one network of a ``SemiMaskDetector``, prefix removed.

    Args:
        state_dict: Keys ``student.<k>`` / ``teacher.<k>`` (a DDP ``module.`` prefix is
            tolerated).
        which: ``'student'`` or ``'teacher'``.

    Returns:
        ``{<k>: tensor}`` in the original order.

    Raises:
        ValueError: Not a semi checkpoint, or keys outside the two networks.
        AssertionError: A key names a SAM module.
    """
    if which not in ('student', 'teacher'):
        raise ValueError(f"which must be 'student' or 'teacher', got {which!r}")
    keys = [k[len('module.'):] if k.startswith('module.') else k for k in state_dict]
    stray = [k for k in keys if not k.startswith(PREFIXES)]
    if len(stray) == len(keys):
        raise ValueError('not a semi-supervised checkpoint: no student./teacher. keys '
                         f'(first keys: {keys[:3]}); a plain checkpoint needs no export')
    if stray:
        raise ValueError(f'{len(stray)} keys outside student./teacher. '
                         f'(e.g. {stray[:3]}): refusing to guess what they are')
    sam = [k for k in keys if SAM_MODULE_NAMES.intersection(k.split('.'))]
    assert not sam, f'SAM weights must not be in a checkpoint, found {sam[:3]}'
    prefix = which + '.'
    return OrderedDict((k[len(prefix):], v) for k, v in zip(keys, state_dict.values())
                       if k.startswith(prefix))


def _plain_meta(meta: Optional[dict], source: str, which: str) -> dict:
    """Only what a plain model needs; plain Python values (loads with weights_only)."""
    import mmdet
    out: Dict[str, Any] = dict(mmdet_version=mmdet.__version__,
                               exported_from=dict(checkpoint=osp.basename(source),
                                                  network=which))
    dataset_meta = (meta or {}).get('dataset_meta')
    if dataset_meta is not None:
        out['dataset_meta'] = _plain(dataset_meta)
    return out


def _plain(value: Any) -> Any:
    """Containers -> dict/list/tuple, numpy scalars -> Python scalars."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if hasattr(value, 'item') and not isinstance(value, torch.Tensor):
        return value.item()
    return value


def export_checkpoint(src: str, dst: str, which: str = 'student') -> Dict[str, Any]:
    """Write ``dst`` = the ``which`` network of the semi checkpoint ``src`` as plain mmdet.

    Returns:
        The written checkpoint dict (``state_dict``, ``meta``).
    """
    ckpt = _load(src)
    state = ckpt.get('state_dict', ckpt)
    out = dict(state_dict=network_state_dict(state, which),
               meta=_plain_meta(ckpt.get('meta'), src, which))
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(out, dst)
    return out


# ----------------------------------------------------------------------------------------
# config
def _registry_pairs() -> List[Tuple[Any, Any]]:
    """(mmssis registry, its mmdet parent) for every registry mmssis adds types to."""
    import mmssis.registry as reg
    names = ('MODELS', 'TASK_UTILS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'METRICS',
             'EVALUATOR', 'HOOKS', 'LOOPS', 'VISUALIZERS', 'VISBACKENDS', 'RUNNERS',
             'OPTIMIZERS', 'OPTIM_WRAPPERS', 'PARAM_SCHEDULERS', 'WEIGHT_INITIALIZERS')
    return [(getattr(reg, n), getattr(reg, n).parent) for n in names]


def _lookup(registry, name: str):
    """``name`` in ``registry`` or its parents (without the child registries)."""
    while registry is not None:
        if name in registry.module_dict:
            return registry.module_dict[name]
        registry = registry.parent
    return None


def _init_params(cls: type) -> Optional[Set[str]]:
    """Keyword arguments ``cls(...)`` accepts (following ``**kwargs`` up the MRO).

    Returns None when every keyword is accepted.
    """
    names: Set[str] = set()
    for klass in cls.__mro__:
        if '__init__' not in klass.__dict__:
            continue
        params = inspect.signature(klass.__dict__['__init__']).parameters.values()
        names.update(p.name for p in params
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names - {'self'}
    return None


class _Converter:
    """Rewrites mmssis types for an mmdet-scoped config (see the module docstring)."""

    def __init__(self) -> None:
        self.pairs = _registry_pairs()
        self.imports: Set[str] = set()
        self.notes: List[str] = []

    def _mmssis_class(self, name: str):
        for own, parent in self.pairs:
            if name in own.module_dict:
                return own.module_dict[name], parent
        return None, None

    def _convert_type(self, cfg: dict) -> dict:
        name = cfg['type']
        if not isinstance(name, str) or '::' in name:
            return cfg
        if name.startswith('mmssis.'):
            cls, _ = self._mmssis_class(name[len('mmssis.'):])
            if cls is not None:
                self.imports.add(cls.__module__.rsplit('.', 1)[0])
            return cfg
        if '.' in name:
            return cfg
        cls, parent = self._mmssis_class(name)
        if cls is None:  # an mmdet / mmcv / mmengine type
            return cfg
        for base in cls.__mro__[1:]:
            if _lookup(parent, base.__name__) is base:
                accepted = _init_params(base)
                dropped = sorted(k for k in cfg if k not in ('type', '_scope_')
                                 and accepted is not None and k not in accepted)
                self.notes.append(f'{name} -> {base.__name__}' +
                                  (f' (dropped {dropped})' if dropped else ''))
                return {k: v for k, v in cfg.items() if k not in dropped} | dict(
                    type=base.__name__)
        self.imports.add(cls.__module__.rsplit('.', 1)[0])
        self.notes.append(f'{name} -> mmssis.{name} (custom import)')
        return {**cfg, 'type': f'mmssis.{name}'}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            value = {k: self(v) for k, v in value.items()}
            return self._convert_type(value) if 'type' in value else value
        if isinstance(value, (list, tuple)):
            return type(value)(self(v) for v in value)
        return value


def _detector_cfg(model: dict) -> dict:
    """The single-detector config of a semi ``model`` dict, with a data preprocessor."""
    if 'detector' not in model:
        raise ValueError('the config is not a semi-supervised one (model has no `detector`)')
    detector = copy.deepcopy(model['detector'])
    if 'data_preprocessor' not in detector:
        pre = model.get('data_preprocessor')
        if pre is None:
            raise ValueError('neither model.detector nor model has a data_preprocessor')
        detector['data_preprocessor'] = copy.deepcopy(pre.get('data_preprocessor', pre))
    return detector


def plain_config(semi_cfg: Config) -> Tuple[Config, List[str]]:
    """An mmdet config evaluating the exported network of ``semi_cfg`` on its test set.

    Returns:
        The plain config and human-readable notes on the type rewrites.
    """
    from mmssis.utils import (install_safe_globals, register_all_modules, sam_free_message,
                              strip_sam_for_eval)
    register_all_modules(init_default_scope=False)  # fill the registries searched below
    install_safe_globals()  # mmengine's checkpoint loader: weights_only + allow-list
    src = semi_cfg.to_dict()
    # No SAM in the exported model (e.g. a stage-1 `SamDistill*` detector's `distill`):
    # the same helper as tools/test.py.
    sam_removed = strip_sam_for_eval(src)
    out: Dict[str, Any] = dict(default_scope='mmdet', model=_detector_cfg(src['model']))
    for split in ('val', 'test'):
        for part in ('dataloader', 'evaluator'):
            key = f'{split}_{part}'
            if src.get(key) is not None:
                out[key] = copy.deepcopy(src[key])
    out['val_cfg'] = dict(type='ValLoop')
    out['test_cfg'] = dict(type='TestLoop')
    if 'val_dataloader' not in out or 'val_evaluator' not in out:
        for key in ('val_dataloader', 'val_evaluator', 'val_cfg'):
            out.pop(key, None)
    for key in RUNTIME_KEYS:
        if src.get(key) is not None:
            out[key] = copy.deepcopy(src[key])
    convert = _Converter()
    out = convert(out)
    if convert.imports:
        out['custom_imports'] = dict(imports=sorted(convert.imports),
                                     allow_failed_imports=False)
    out.update(load_from=None, resume=False)
    notes = ([sam_free_message(sam_removed)] if sam_removed else []) + convert.notes
    return Config(out), notes


def write_plain_config(semi_cfg: Config, path: str) -> List[str]:
    """Write :func:`plain_config` of ``semi_cfg`` to ``path`` (.py); returns the notes."""
    cfg, notes = plain_config(semi_cfg)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    cfg.dump(path)
    return notes


def config_path_for(out: str) -> str:
    """The plain config written next to the exported checkpoint ``out``."""
    return osp.splitext(out)[0] + '.py'


def _semi_config(args: argparse.Namespace) -> Optional[Config]:
    if args.config:
        return Config.fromfile(args.config)
    text = (_load(args.checkpoint).get('meta') or {}).get('cfg')
    return Config.fromstring(text, '.py') if text else None


def main(argv: Optional[Sequence[str]] = None) -> Tuple[str, Optional[str]]:
    """Export; prints and returns ``(checkpoint path, plain config path or None)``."""
    args = parse_args(argv)
    ckpt = export_checkpoint(args.checkpoint, args.out, args.which)
    print(f'exported the {args.which} ({len(ckpt["state_dict"])} tensors) to {args.out}')
    semi_cfg = _semi_config(args)
    if semi_cfg is None:
        print('no config given and no config text in the checkpoint meta: no plain config '
              'written')
        return args.out, None
    cfg_path = config_path_for(args.out)
    for note in write_plain_config(semi_cfg, cfg_path):
        print(f'config: {note}')
    imports = (Config.fromfile(cfg_path).get('custom_imports') or {}).get('imports')
    if imports:
        print(f'config: needs mmssis installed to load: it keeps mmssis types without an '
              f'mmdet counterpart (custom_imports {imports}; the demo models\' '
              'EfficientNet-Lite0 backbone is one)')
    else:
        print('config: plain mmdet (no mmssis type): mmdet alone loads and evaluates it')
    print(cfg_path)
    return args.out, cfg_path


if __name__ == '__main__':
    main()
