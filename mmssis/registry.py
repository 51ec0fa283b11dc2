"""mmssis registries: children of MMDetection's, scope ``mmssis``.

A child registry looks a type up in itself first and then in its parents, so an mmssis
config (``default_scope='mmssis'``) can name mmdet and mmengine types unprefixed, while an
mmdet-scoped dict (inherited from an ``mmdet::`` base) reaches mmssis types with the
``mmssis.`` prefix.
"""
from mmdet.registry import DATA_SAMPLERS as MMDET_DATA_SAMPLERS
from mmdet.registry import DATASETS as MMDET_DATASETS
from mmdet.registry import EVALUATOR as MMDET_EVALUATOR
from mmdet.registry import HOOKS as MMDET_HOOKS
from mmdet.registry import LOG_PROCESSORS as MMDET_LOG_PROCESSORS
from mmdet.registry import LOOPS as MMDET_LOOPS
from mmdet.registry import METRICS as MMDET_METRICS
from mmdet.registry import MODEL_WRAPPERS as MMDET_MODEL_WRAPPERS
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMDET_OPTIM_WRAPPER_CONSTRUCTORS
from mmdet.registry import OPTIM_WRAPPERS as MMDET_OPTIM_WRAPPERS
from mmdet.registry import OPTIMIZERS as MMDET_OPTIMIZERS
from mmdet.registry import PARAM_SCHEDULERS as MMDET_PARAM_SCHEDULERS
from mmdet.registry import RUNNER_CONSTRUCTORS as MMDET_RUNNER_CONSTRUCTORS
from mmdet.registry import RUNNERS as MMDET_RUNNERS
from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
from mmdet.registry import TRANSFORMS as MMDET_TRANSFORMS
from mmdet.registry import VISBACKENDS as MMDET_VISBACKENDS
from mmdet.registry import VISUALIZERS as MMDET_VISUALIZERS
from mmdet.registry import WEIGHT_INITIALIZERS as MMDET_WEIGHT_INITIALIZERS
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import Registry

_SCOPE = 'mmssis'


def _child(name: str, parent: Registry, locations: list) -> Registry:
    return Registry(name, parent=parent, scope=_SCOPE, locations=locations)


RUNNERS = _child('runner', MMDET_RUNNERS, ['mmssis.engine'])
RUNNER_CONSTRUCTORS = _child('runner constructor', MMDET_RUNNER_CONSTRUCTORS, ['mmssis.engine'])
LOOPS = _child('loop', MMDET_LOOPS, ['mmssis.engine'])
HOOKS = _child('hook', MMDET_HOOKS, ['mmssis.engine'])
DATASETS = _child('dataset', MMDET_DATASETS, ['mmssis.datasets'])
DATA_SAMPLERS = _child('data sampler', MMDET_DATA_SAMPLERS, ['mmssis.datasets'])
TRANSFORMS = _child('transform', MMDET_TRANSFORMS, ['mmssis.datasets'])
MODELS = _child('model', MMDET_MODELS, ['mmssis.models', 'mmssis.sam'])
MODEL_WRAPPERS = _child('model_wrapper', MMDET_MODEL_WRAPPERS, ['mmssis.models'])
WEIGHT_INITIALIZERS = _child('weight initializer', MMDET_WEIGHT_INITIALIZERS, ['mmssis.models'])
OPTIMIZERS = _child('optimizer', MMDET_OPTIMIZERS, ['mmssis.engine'])
OPTIM_WRAPPERS = _child('optim_wrapper', MMDET_OPTIM_WRAPPERS, ['mmssis.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMDET_OPTIM_WRAPPER_CONSTRUCTORS, ['mmssis.engine'])
PARAM_SCHEDULERS = _child('parameter scheduler', MMDET_PARAM_SCHEDULERS, ['mmssis.engine'])
METRICS = _child('metric', MMDET_METRICS, ['mmssis.evaluation'])
EVALUATOR = _child('evaluator', MMDET_EVALUATOR, ['mmssis.evaluation'])
TASK_UTILS = _child('task util', MMDET_TASK_UTILS, ['mmssis.models'])
VISUALIZERS = _child('visualizer', MMDET_VISUALIZERS, ['mmssis.visualization'])
VISBACKENDS = _child('vis_backend', MMDET_VISBACKENDS, ['mmssis.visualization'])
LOG_PROCESSORS = _child('log_processor', MMDET_LOG_PROCESSORS, ['mmssis.engine'])
# mmdet has no child of these two mmengine roots; mmengine still searches them in the
# default scope (FUNCTIONS: FSDP wrap policies; STRATEGIES: FlexibleRunner), so without an
# mmssis child it would warn "Failed to search registry with scope mmssis ...".
FUNCTIONS = _child('function', MMENGINE_FUNCTIONS, ['mmssis.engine'])
STRATEGIES = _child('strategy', MMENGINE_STRATEGIES, ['mmssis.engine'])
