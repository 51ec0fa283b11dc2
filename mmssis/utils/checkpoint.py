"""Safe checkpoint loading for torch >= 2.6 (``weights_only=True``).

torch >= 2.6 unpickles checkpoints with ``weights_only=True`` by default. mmengine writes a
few non-tensor objects into checkpoint meta (its ``HistoryBuffer`` log buffers holding numpy
arrays, numpy scalars and dtypes), so ``--resume`` fails with an ``UnpicklingError``.
Instead of turning the protection off (``weights_only=False`` would run arbitrary pickled
code), this module allow-lists exactly the types mmengine writes, in one place, and
replaces mmengine's local-file checkpoint loader with one that always loads with
``weights_only=True`` and turns an unpickling refusal into an error naming the file and the
offending type.
"""
import os.path as osp
import pickle
from typing import Any, List, Optional

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds a pickled object outside mmssis' allow-list (nothing was run)."""


def _numpy_globals() -> List[Any]:
    """Numpy reconstruction helpers, dtypes and scalar types as pickled by numpy 1.x/2.x."""
    found: List[Any] = [np.ndarray, np.dtype]
    # numpy 2 moved ``numpy.core`` to ``numpy._core``; pickles name whichever wrote them.
    for modname in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            mod = __import__(modname, fromlist=['_reconstruct', 'scalar'])
        except ImportError:
            continue
        for attr in ('_reconstruct', 'scalar'):
            if hasattr(mod, attr):
                found.append(getattr(mod, attr))
    # Concrete dtype classes (numpy >= 1.25 pickles ``np.dtypes.Float64DType`` etc.).
    dtypes_mod = getattr(np, 'dtypes', None)
    if dtypes_mod is not None:
        found.extend(getattr(dtypes_mod, name) for name in dir(dtypes_mod)
                     if name.endswith('DType') and isinstance(getattr(dtypes_mod, name), type))
    for name in ('bool_', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32',
                 'uint64', 'float16', 'float32', 'float64', 'str_'):
        found.append(getattr(np, name))
    return found


def safe_globals() -> List[Any]:
    """Everything a checkpoint written by mmengine/mmdet/mmssis may contain besides tensors."""
    return [HistoryBuffer, *_numpy_globals()]


_INSTALLED = False


def _history_buffer_getstate(self: HistoryBuffer) -> dict:
    """Pickle a ``HistoryBuffer`` without its ``statistics_methods`` function table.

    mmengine pickles the table of statistics functions (``HistoryBuffer.min`` ...), which
    protocol 2 writes as ``getattr(HistoryBuffer, 'min')``; allow-listing ``getattr`` would
    let a checkpoint fetch arbitrary attributes, so the table is left out instead. The
    methods are class-level and re-registered on import, and mmengine's ``__setstate__``
    already treats the table as optional.
    """
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    return state


def install_safe_globals() -> None:
    """Allow-list :func:`safe_globals` for ``torch.load(weights_only=True)`` (idempotent).

    Also makes mmengine's local-path loader (used by ``--resume``, ``load_from`` and
    ``load_checkpoint``) go through :func:`load_checkpoint_file`.
    """
    global _INSTALLED
    if _INSTALLED:
        return
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:  # torch < 2.4 has no allow-list and loads with weights_only=False.
        add(safe_globals())
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)
    _INSTALLED = True


def load_checkpoint_file(filename: str, map_location: Optional[Any] = None) -> Any:
    """Load a local checkpoint with ``weights_only=True``.

    Args:
        filename: Path of the checkpoint file.
        map_location: As for :func:`torch.load`.

    Returns:
        The unpickled checkpoint (usually a dict with ``state_dict``/``meta``).

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file holds a pickled object outside the allow-list.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    # The allow-list applies to this call even when install_safe_globals() never ran (a
    # user's script, a tool that loads before registering modules). Added for good rather
    # than with torch's `safe_globals` context manager: leaving that context clears the
    # process' allow-list (what install_safe_globals() added included).
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:
        add(safe_globals())
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f'refused to load checkpoint {filename}: it contains a pickled object that is not '
            f'on the allow-list of mmssis.utils.checkpoint (no code from it was run). '
            f'torch said: {str(err).splitlines()[0]}. If you trust the file and the type is '
            f'harmless, add it with torch.serialization.add_safe_globals([...]).') from None
    except (RuntimeError, EOFError) as err:
        # A file cut short (e.g. by a kill during saving) or empty: torch names no path.
        # Other RuntimeErrors (e.g. a CUDA map_location on a CPU machine) pass unchanged.
        if isinstance(err, RuntimeError) and not any(
                k in str(err) for k in ('zip archive', 'central directory', 'PytorchStreamReader')):
            raise
        raise RuntimeError(f'checkpoint {filename} is truncated or not a torch checkpoint '
                           f'({type(err).__name__}: {str(err).splitlines()[0] if str(err) else "empty file"}). '
                           'Delete it and resume from an earlier one.') from err
