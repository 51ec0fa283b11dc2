"""Checkpoints load with weights_only=True through mmssis' allow-list."""
import collections
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from mmssis.utils import UnsafeCheckpointError, load_checkpoint_file


def _mmengine_like_checkpoint():
    hub = MessageHub.get_instance('test_checkpoint_hub')
    for i in range(3):
        hub.update_scalar('train/loss', np.float64(1.0 / (i + 1)))
    return {
        'meta': {'seed': np.int64(3), 'iter': 7, 'dataset_meta': {'classes': ('a', 'b')},
                 'np_array': np.arange(4, dtype=np.float32)},
        'state_dict': collections.OrderedDict(w=torch.ones(2)),
        'message_hub': hub.state_dict(),
    }


def test_mmengine_meta_round_trips(tmp_path):
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    loaded = load_checkpoint_file(str(path))
    assert loaded['meta']['iter'] == 7
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    np.testing.assert_allclose(loaded['meta']['np_array'], np.arange(4))
    # mmengine's own entry point (used by --resume / load_from) goes through the same loader.
    assert CheckpointLoader._schemes[''] is load_checkpoint_file
    assert torch.equal(_load_checkpoint(str(path))['state_dict']['w'], torch.ones(2))


class _Evil:
    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran():
    _Evil.ran = True
    return 'boom'


def test_unexpected_pickled_object_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': {'x': _Evil()}}, path)
    _Evil.ran = False
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        load_checkpoint_file(str(path))
    assert not _Evil.ran, 'no code from the checkpoint may run'


def test_missing_checkpoint_names_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))


def test_pickle_error_type():
    assert issubclass(UnsafeCheckpointError, RuntimeError)
    assert pickle.UnpicklingError is not UnsafeCheckpointError
