# The pseudo-label evaluations live in mmssis.evaluation (the hooks use them); re-exported.
from mmssis.evaluation import calibration_records, evaluate_pseudo_labels, evaluate_sam_benefit

from .stages import (StageRunner, evaluate_checkpoint, evaluate_checkpoint_subprocess,
                     stage_env, train_stage)

__all__ = ['train_stage', 'evaluate_checkpoint', 'evaluate_checkpoint_subprocess', 'StageRunner',
           'stage_env', 'evaluate_pseudo_labels', 'calibration_records', 'evaluate_sam_benefit']
