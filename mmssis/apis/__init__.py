from .stages import (StageRunner, evaluate_checkpoint, evaluate_checkpoint_subprocess,
                     stage_env, train_stage)

__all__ = ['train_stage', 'evaluate_checkpoint', 'evaluate_checkpoint_subprocess', 'StageRunner',
           'stage_env']
