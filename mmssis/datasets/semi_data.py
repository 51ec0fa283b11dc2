"""Helpers for the data sets of semi-supervised configs."""
import copy

from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmssis.registry import DATASETS


def _build_source(cfg: Config, index: int):
    """Data set ``index`` of the config's ``[labelled, unlabelled]`` ``ConcatDataset``.

    Raises:
        ValueError: The config's training set is not a ``ConcatDataset`` of
            ``[labelled, unlabelled]`` data sets (the layout of every mmssis semi config).
    """
    datasets = cfg.train_dataloader.dataset.get('datasets')
    if not datasets or len(datasets) < 2:
        raise ValueError(f'{cfg.filename}: train_dataloader.dataset is not a ConcatDataset '
                         'of [labelled, unlabelled] data sets')
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmssis')):
        return DATASETS.build(copy.deepcopy(datasets[index]))


def build_labelled_dataset(cfg: Config):
    """The labelled data set of a semi config (``train_dataloader.dataset.datasets[0]``).

    Raises:
        ValueError: See :func:`build_unlabelled_dataset`.
    """
    return _build_source(cfg, 0)


def build_unlabelled_dataset(cfg: Config):
    """The unlabelled data set of a semi config (``train_dataloader.dataset.datasets[1]``).

    Raises:
        ValueError: The config's training set is not a ``ConcatDataset`` of
            ``[labelled, unlabelled]`` data sets (the layout of every mmssis semi config).
    """
    return _build_source(cfg, 1)
