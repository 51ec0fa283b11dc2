"""Resolve every ``type`` of a config in the registry its scope selects.

A config that inherits an ``mmdet::`` base keeps ``_scope_='mmdet'`` in the inherited dicts;
an unprefixed mmssis type inside such a dict is looked up in mmdet's registry and fails at
build time. :func:`unresolved_types` finds these without building anything.
"""
from typing import Any, List, Optional, Tuple

from mmengine.config import Config
from mmengine.registry import Registry

from mmssis import registry as R

# Top-level config key -> registry its dicts' ``type`` must live in.
_KEY_REGISTRY = {
    'model': R.MODELS,
    'train_dataloader': None,  # handled by _dataloader_registries
    'val_dataloader': None,
    'test_dataloader': None,
    'val_evaluator': R.METRICS,
    'test_evaluator': R.METRICS,
    'custom_hooks': R.HOOKS,
    'default_hooks': R.HOOKS,
    'param_scheduler': R.PARAM_SCHEDULERS,
    'visualizer': R.VISUALIZERS,
    'train_cfg': R.LOOPS,
    'val_cfg': R.LOOPS,
    'test_cfg': R.LOOPS,
}
_DATALOADER_KEYS = {'sampler': R.DATA_SAMPLERS, 'batch_sampler': R.DATA_SAMPLERS,
                    'dataset': R.DATASETS}
_DATASET_CHILD_KEYS = {'pipeline': R.TRANSFORMS, 'datasets': R.DATASETS,
                       'dataset': R.DATASETS}
# Keys whose nested dicts belong to another registry than their parent.
_MODEL_CHILD_KEYS = {'assigner': R.TASK_UTILS, 'sampler': R.TASK_UTILS,
                     'anchor_generator': R.TASK_UTILS, 'bbox_coder': R.TASK_UTILS,
                     'prior_generator': R.TASK_UTILS, 'point_generator': R.TASK_UTILS,
                     'match_costs': R.TASK_UTILS, 'iou_calculator': R.TASK_UTILS}
# Dict-valued keys that hold plain settings (their ``type`` is not a registry type).
_SKIP_KEYS = {'init_cfg', 'norm_cfg', 'act_cfg', 'conv_cfg', 'nms', 'upsample_cfg',
              'plugins', 'dcn', 'vis_backends', 'optimizer', 'paramwise_cfg',
              'data_preprocessor_cfg', 'dist_cfg', 'mp_cfg', 'aug_space', 'rpn_proposal',
              'positional_encoding', 'attn_cfgs', 'ffn_cfgs', 'self_attn_cfg',
              'cross_attn_cfg', 'ffn_cfg', 'layer_cfg', 'transformerlayers', 'backend',
              'roi_layer'}


def _lookup(registry: Registry, scope: Optional[str], type_name: str) -> bool:
    with registry.switch_scope_and_registry(scope) as reg:
        return reg.get(type_name) is not None


def _walk(node: Any, registry: Registry, scope: Optional[str], path: str,
          out: List[Tuple[str, str, str]]) -> None:
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            _walk(item, registry, scope, f'{path}[{i}]', out)
        return
    if not isinstance(node, dict):
        return
    scope = node.get('_scope_', scope)
    typ = node.get('type', None)
    if isinstance(typ, str) and not _lookup(registry, scope, typ):
        out.append((path, typ, str(scope)))
    for key, value in node.items():
        if key in _SKIP_KEYS or key in ('type', '_scope_'):
            continue
        child_reg = registry
        if registry is R.DATASETS and key in _DATASET_CHILD_KEYS:
            child_reg = _DATASET_CHILD_KEYS[key]
        elif registry is R.TRANSFORMS and key not in ('transforms',):
            # MultiBranch branches, RandomOrder/RandomChoice transforms: still transforms.
            child_reg = R.TRANSFORMS
        elif registry is R.MODELS and key in _MODEL_CHILD_KEYS:
            child_reg = _MODEL_CHILD_KEYS[key]
        elif registry is R.TASK_UTILS and key in ('match_costs', 'iou_calculator'):
            child_reg = R.TASK_UTILS
        _walk(value, child_reg, scope, f'{path}.{key}', out)


def unresolved_types(cfg: Config) -> List[Tuple[str, str, str]]:
    """List ``(config path, type, scope)`` of every ``type`` its registry can not find.

    Args:
        cfg: A loaded config (``Config.fromfile``).

    Returns:
        Empty when every type resolves under its scope.
    """
    out: List[Tuple[str, str, str]] = []
    default = cfg.get('default_scope', 'mmdet')
    for key, registry in _KEY_REGISTRY.items():
        if key not in cfg:
            continue
        value = cfg[key]
        if key.endswith('_dataloader'):
            if isinstance(value, dict):
                for sub, reg in _DATALOADER_KEYS.items():
                    if sub in value:
                        _walk(value[sub], reg, default, f'{key}.{sub}', out)
            continue
        if key == 'default_hooks':
            for name, hook in (value or {}).items():
                _walk(hook, registry, default, f'{key}.{name}', out)
            continue
        _walk(value, registry, default, key, out)
    return out
