"""A DDP wrapper that also works for CPU (gloo) runs (opt-in).

mmengine's runner wraps the model with ``device_ids=[LOCAL_RANK]``, which torch's
``DistributedDataParallel`` rejects for a module on the CPU. This wrapper drops
``device_ids`` when the module's parameters live on the CPU and is otherwise mmengine's
``MMDistributedDataParallel`` (same ``train_step``/``val_step``).

``Runner.wrap_model`` looks wrappers up in mmengine's *root* registry, so using it means
registering there: :func:`register_cpu_ddp` does that when a CPU distributed run asks for
it (``adapt_cfg_to_machine``); importing mmssis registers nothing in mmengine's registries.
"""
from typing import List, Optional

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS


class CPUAwareDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that accepts CPU modules (gloo process groups)."""

    def __init__(self, module: torch.nn.Module, device_ids: Optional[List[int]] = None,
                 **kwargs) -> None:
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        super().__init__(module=module, device_ids=None if on_cpu else device_ids, **kwargs)


def register_cpu_ddp() -> str:
    """Register :class:`CPUAwareDistributedDataParallel` in mmengine's root
    ``MODEL_WRAPPERS`` (idempotent) and return its type name for ``model_wrapper_cfg``."""
    name = CPUAwareDistributedDataParallel.__name__
    if MMENGINE_MODEL_WRAPPERS.get(name) is None:
        MMENGINE_MODEL_WRAPPERS.register_module(module=CPUAwareDistributedDataParallel)
    return name
