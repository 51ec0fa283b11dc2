"""Save random number generator states in checkpoints and restore them on resume.

mmengine's resume restores weights, optimizer, schedulers and the message hub, and
``IterBasedTrainLoop`` re-reads (and throws away) the batches already trained so the
sampler is back in place. The random generators are *not* restored: the resumed process
is seeded from ``randomness.seed`` again, so data augmentation, RPN/RoI sampling, SAM
point sampling and ARP pairing diverge from the uninterrupted run. This hook closes that
gap:

* ``before_save_checkpoint``: the states of Python's ``random``, numpy's global
  generator, torch's CPU (and CUDA) generator and of the generators of model components
  (``generators``: attribute paths on the bare model, by default the SAM refiner's
  ``torch.Generator`` and the ARP mixer's ``numpy.random.Generator``) go to
  ``checkpoint['meta']['rng_state']``, one entry per rank.
* resume: the states are restored right before the loop fetches the first batch that was
  not trained yet.

Ordering in ``IterBasedTrainLoop.run`` (mmengine 0.10)::

    before_train -> before_train_epoch -> next(iterator) x runner.iter (skip)
    -> loop: next(iterator) -> before_train_iter -> train_step -> after_train_iter

The batch of the first resumed iteration is produced (with ``num_workers=0``: augmented
in this process) *before* ``before_train_iter``, so restoring there would be too late for
its augmentation. The hook therefore wraps ``train_loop.dataloader_iterator`` in
``before_train`` and restores the states just before the ``runner.iter + 1``-th fetch,
i.e. after the skip, exactly where the uninterrupted run stood when it saved (the
checkpoint is written in ``after_train_iter``; nothing between that and the next fetch
draws random numbers). Other loops get the states at the first ``before_train_iter``
(the first resumed batch's augmentation is then not reproduced).

Distributed runs: ``Runner.save_checkpoint`` and its hooks run on rank 0 only, so the
states of all ranks are all-gathered in ``after_train_iter``/``after_train_epoch``
(priority 80: after ``LOW`` hooks such as calibration, right before ``CheckpointHook``)
whenever a ``CheckpointHook`` is about to save; each rank restores its own entry, and only
when the world size is unchanged.

Limits: with ``num_workers > 0`` augmentation runs in worker processes whose generators
are not saved; mmengine seeds them deterministically and the skip replays them, but this
is not guaranteed to be exact (and not tested). Bit-exactness also needs deterministic
kernels (``randomness=dict(seed=..., deterministic=True)``) and the same thread count.
"""
import logging
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from mmssis.registry import HOOKS
from mmssis.utils.misc import unwrap_model

#: Key under ``checkpoint['meta']``.
CKPT_META_KEY = 'rng_state'
#: Attribute paths (on the bare model) of component generators saved by default.
DEFAULT_GENERATORS = ('sam_refiner.refiner.generator', 'instance_mixer._rng')
#: numpy bit generators a checkpoint may name (it must not pick arbitrary attributes).
_NUMPY_BIT_GENERATORS = ('PCG64', 'PCG64DXSM', 'MT19937', 'Philox', 'SFC64')

State = Dict[str, Any]


# ---------------------------------------------------------------------- global generators
def capture_global_rng() -> State:
    """States of Python ``random``, numpy's global generator and torch (CPU, CUDA).

    Returns:
        Plain Python containers and tensors only (loads with ``weights_only=True``).
    """
    np_state = np.random.get_state(legacy=False)
    state = dict(
        python=random.getstate(),
        numpy=dict(bit_generator=np_state['bit_generator'],
                   key=np_state['state']['key'].tolist(), pos=int(np_state['state']['pos']),
                   has_gauss=int(np_state['has_gauss']), gauss=float(np_state['gauss'])),
        torch=torch.get_rng_state(),
        cuda=None)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_global_rng(state: State) -> None:
    """Inverse of :func:`capture_global_rng`."""
    random.setstate(_as_python_state(state['python']))
    npst = state['numpy']
    np.random.set_state(dict(
        bit_generator=npst['bit_generator'],
        state=dict(key=np.asarray(npst['key'], dtype=np.uint32), pos=npst['pos']),
        has_gauss=npst['has_gauss'], gauss=npst['gauss']))
    torch.set_rng_state(state['torch'])
    cuda = state.get('cuda')
    if cuda is not None and torch.cuda.is_available() and len(cuda) == \
            torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _as_python_state(state: Any) -> tuple:
    """``random.setstate`` wants ``(version, tuple_of_ints, gauss)`` tuples."""
    version, internal, gauss = state
    return int(version), tuple(int(v) for v in internal), gauss


# ---------------------------------------------------------------------- component generators
def capture_generator(gen: Any) -> Optional[State]:
    """State of one generator (``None`` for a not-yet-created lazy generator).

    Args:
        gen: A ``torch.Generator``, ``numpy.random.Generator``,
            ``numpy.random.RandomState``, ``random.Random`` or ``None``.

    Returns:
        ``{'kind': ..., 'state': ...}`` in plain containers/tensors, or ``None``.
    """
    if gen is None:
        return None
    if isinstance(gen, torch.Generator):
        return dict(kind='torch', state=gen.get_state())
    if isinstance(gen, np.random.Generator):
        return dict(kind='numpy_generator', state=gen.bit_generator.state)
    if isinstance(gen, np.random.RandomState):
        st = gen.get_state(legacy=False)
        return dict(kind='numpy_random_state',
                    state=dict(bit_generator=st['bit_generator'],
                               key=st['state']['key'].tolist(), pos=int(st['state']['pos']),
                               has_gauss=int(st['has_gauss']), gauss=float(st['gauss'])))
    if isinstance(gen, random.Random):
        return dict(kind='python', state=gen.getstate())
    raise TypeError(f'unsupported generator type {type(gen).__name__}')


def restore_generator(owner: Any, attr: str, saved: Optional[State]) -> None:
    """Set ``owner.<attr>`` to the generator state ``saved`` (in place where possible).

    A saved ``None`` (lazy generator not created yet when saving) resets the attribute to
    ``None`` so it is created lazily again, at the same point as in the saved run.
    """
    current = getattr(owner, attr)
    if saved is None:
        if current is not None and not isinstance(current, torch.Generator):
            setattr(owner, attr, None)
        return
    kind = saved['kind']
    if kind == 'torch':
        current.set_state(saved['state'])
    elif kind == 'numpy_generator':
        name = saved['state']['bit_generator']
        if name not in _NUMPY_BIT_GENERATORS:
            raise ValueError(f'unknown numpy bit generator {name!r} in the checkpoint')
        if not isinstance(current, np.random.Generator) or \
                type(current.bit_generator).__name__ != name:
            current = np.random.Generator(getattr(np.random, name)())
            setattr(owner, attr, current)
        current.bit_generator.state = saved['state']
    elif kind == 'numpy_random_state':
        st = saved['state']
        current.set_state(dict(bit_generator=st['bit_generator'],
                               state=dict(key=np.asarray(st['key'], dtype=np.uint32),
                                          pos=st['pos']),
                               has_gauss=st['has_gauss'], gauss=st['gauss']))
    elif kind == 'python':
        current.setstate(_as_python_state(saved['state']))
    else:
        raise ValueError(f'unknown generator kind {kind!r} in the checkpoint')


def _resolve(model: Any, path: str) -> Optional[Tuple[Any, str]]:
    """``(owner, attr)`` of a dotted attribute path, or ``None`` if a part is missing."""
    *parents, attr = path.split('.')
    owner = model
    for name in parents:
        owner = getattr(owner, name, None)
        if owner is None:
            return None
    return (owner, attr) if hasattr(owner, attr) else None


class _RestoreBeforeFetch:
    """Stands in for ``IterBasedTrainLoop.dataloader_iterator`` until the resume point.

    The first ``skip`` fetches (the loop's skip of trained batches) pass through; the
    states are restored right before fetch ``skip + 1``, and the loop gets its own
    iterator back.
    """

    def __init__(self, loop: Any, skip: int, restore) -> None:
        self._loop = loop
        self._inner = loop.dataloader_iterator
        self._skip = skip
        self._restore = restore
        self._calls = 0

    def __iter__(self) -> '_RestoreBeforeFetch':
        return self

    def __next__(self) -> Any:
        if self._calls == self._skip:
            self._loop.dataloader_iterator = self._inner
            self._restore()
        self._calls += 1
        return next(self._inner)

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get('_inner')  # no recursion before __init__ ran
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)


@HOOKS.register_module()
class RngStateHook(Hook):
    """Checkpoint RNG states and restore them on resume (see the module docstring).

    Args:
        generators: Attribute paths, relative to the bare model, of component generators
            to save too (``torch.Generator``, ``numpy.random.Generator`` /
            ``RandomState``, ``random.Random``; a path whose component is absent is
            skipped).
    """

    priority = 80  # after LOW (calibration, param scheduler), before VERY_LOW (checkpoint)

    def __init__(self, generators: Sequence[str] = DEFAULT_GENERATORS) -> None:
        self.generators = tuple(generators)
        self._loaded: Optional[Dict] = None
        self._gathered: Optional[Tuple[Tuple[int, int], List[State]]] = None
        self._pending: Optional[State] = None

    # ------------------------------------------------------------------ capture
    @staticmethod
    def _bare(runner) -> Any:
        return unwrap_model(runner.model)

    def capture(self, runner) -> State:
        """This process' global and component generator states."""
        state = capture_global_rng()
        model = self._bare(runner)
        comps = {}
        for path in self.generators:
            found = _resolve(model, path)
            if found is not None:
                comps[path] = capture_generator(getattr(*found))
        state['generators'] = comps
        return state

    def restore(self, runner, state: State) -> None:
        """Restore :meth:`capture`'s output."""
        restore_global_rng(state)
        model = self._bare(runner)
        for path, saved in (state.get('generators') or {}).items():
            found = _resolve(model, path)
            if found is None:
                print_log(f'RngStateHook: the checkpoint has a state for {path!r} but the '
                          f'model has no such generator; left as built.', logger='current',
                          level=logging.WARNING)
                continue
            restore_generator(found[0], found[1], saved)

    @staticmethod
    def _save_due(runner, by_epoch: bool) -> bool:
        """Whether a ``CheckpointHook`` saves right after this hook (same event)."""
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook) or hook.by_epoch != by_epoch:
                continue
            if by_epoch:
                due = hook.every_n_epochs(runner, hook.interval, hook.save_begin) or (
                    hook.save_last and hook.is_last_train_epoch(runner))
            else:
                due = hook.every_n_train_iters(runner, hook.interval, hook.save_begin) or (
                    hook.save_last and hook.is_last_train_iter(runner))
            if due:
                return True
        return False

    def _gather_if_saving(self, runner, by_epoch: bool) -> None:
        # Collective: every rank runs the same hooks with the same counters.
        if get_world_size() > 1 and self._save_due(runner, by_epoch):
            self._gathered = ((runner.epoch, runner.iter),
                              all_gather_object(self.capture(runner)))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._gather_if_saving(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather_if_saving(runner, by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the states of every rank (gathered) or of this process."""
        key = (runner.epoch, runner.iter)
        if self._gathered is not None and self._gathered[0] == key:
            ranks = list(self._gathered[1])
        else:
            # Single process, or a save no CheckpointHook announced (rank 0 only then).
            ranks = [self.capture(runner)]
        self._gathered = None
        checkpoint.setdefault('meta', {})[CKPT_META_KEY] = dict(
            version=1, world_size=get_world_size(), ranks=ranks)

    # ------------------------------------------------------------------ restore
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the saved states; ``before_train`` uses them if the run resumes."""
        self._loaded = (checkpoint.get('meta') or {}).get(CKPT_META_KEY)

    def before_train(self, runner) -> None:
        loaded, self._loaded = self._loaded, None
        self._pending = None
        if runner.iter == 0:
            return  # fresh run or ``load_from``: the config's seed applies
        if loaded is None:
            print_log('RngStateHook: the resumed checkpoint holds no RNG states; the '
                      'resumed run is not bit-exact.', logger='current',
                      level=logging.WARNING)
            return
        ranks, world = loaded.get('ranks') or [], get_world_size()
        if len(ranks) != world:
            print_log(f'RngStateHook: the checkpoint holds RNG states of {len(ranks)} '
                      f'rank(s) but {world} are running; RNG states are not restored.',
                      logger='current', level=logging.WARNING)
            return
        self._pending = ranks[get_rank()]
        self._warn_workers(runner)
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):
            loop.dataloader_iterator = _RestoreBeforeFetch(loop, runner.iter,
                                                           lambda: self._restore_now(runner))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        # Loops without a ``dataloader_iterator`` (e.g. epoch based) restore here.
        if self._pending is not None:
            self._restore_now(runner)

    def _restore_now(self, runner) -> None:
        state, self._pending = self._pending, None
        if state is None:
            return
        self.restore(runner, state)
        print_log(f'RngStateHook: restored the RNG states (python, numpy, torch, '
                  f'{sorted(state.get("generators") or {})}) for iteration '
                  f'{runner.iter + 1}.', logger='current')

    @staticmethod
    def _warn_workers(runner) -> None:
        workers = getattr(runner.train_dataloader, 'num_workers', 0)
        if workers:
            print_log(f'RngStateHook: the train dataloader has {workers} worker '
                      f'process(es); their generators are not checkpointed, so data '
                      f'augmentation after resume is not guaranteed to be bit-exact.',
                      logger='current', level=logging.WARNING)
