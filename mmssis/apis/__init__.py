from .stages import evaluate_checkpoint, train_stage

__all__ = ['train_stage', 'evaluate_checkpoint']
