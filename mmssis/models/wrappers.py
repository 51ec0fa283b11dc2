"""A DDP wrapper that also works for CPU (gloo) runs.

mmengine's runner wraps the model with ``device_ids=[LOCAL_RANK]``, which torch's
``DistributedDataParallel`` rejects for a module on the CPU. This wrapper drops
``device_ids`` when the module's parameters live on the CPU and is otherwise mmengine's
``MMDistributedDataParallel`` (same ``train_step``/``val_step``).
"""
from typing import List, Optional

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS


# Registered in mmengine's root registry: ``Runner.wrap_model`` looks wrappers up there
# directly (``MODEL_WRAPPERS.get(type)``), and a root registry resolves a scope prefix only
# for its direct children, not for mmssis' (a child of mmdet's).
@MMENGINE_MODEL_WRAPPERS.register_module()
class CPUAwareDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that accepts CPU modules (gloo process groups)."""

    def __init__(self, module: torch.nn.Module, device_ids: Optional[List[int]] = None,
                 **kwargs) -> None:
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        super().__init__(module=module, device_ids=None if on_cpu else device_ids, **kwargs)
