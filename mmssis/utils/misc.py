"""Small helpers on mmengine objects."""
import torch
from mmengine.model import is_model_wrapper


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model behind a DDP / FSDP-style mmengine wrapper (the model itself if
    unwrapped)."""
    return model.module if is_model_wrapper(model) else model


def default_device() -> str:
    """The tools' ``--device`` default: ``'cuda'`` when a GPU is visible, else ``'cpu'``."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'
