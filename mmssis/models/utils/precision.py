"""Full precision for the parts of a training step that only make targets."""
import torch


def outside_autocast(device) -> torch.autocast:
    """A context in which ops run in the precision of their inputs, also inside an AMP
    (``AmpOptimWrapper``) autocast region.

    The official S4M code computes the teacher's pseudo-labels, SAM's refinement and SAM's
    distillation targets before it enters autocast, in fp32; only the student's forward runs
    in mixed precision. Wrapping those parts in this context does the same here.

    Args:
        device: The device (or its type string) the wrapped ops run on.
    """
    return torch.autocast(device_type=torch.device(device).type, enabled=False)
