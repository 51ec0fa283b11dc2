"""Run a training stage through ``tools/train.py`` and evaluate its checkpoint.

Shared by ``tools/misc/run_demo.py`` and ``benchmarks/ablation.py``. A stage trains in a
subprocess, exactly as a user runs ``tools/train.py`` (so a crash in one stage cannot leave
state behind in the next), is resumed when its work dir has a ``last_checkpoint``, and is
skipped when ``final.pth`` exists.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence

PKG = osp.dirname(osp.dirname(osp.abspath(__file__)))


def project_root(pkg: str = PKG) -> str:
    """The directory holding ``tools/train.py`` and ``configs/`` for the package at ``pkg``:
    its source checkout, or the ``.mim`` copy inside an installed package (``setup.py``).

    Raises:
        FileNotFoundError: Neither has ``tools/train.py`` (a broken install).
    """
    for root in (osp.dirname(pkg), osp.join(pkg, '.mim')):
        if osp.isfile(osp.join(root, 'tools', 'train.py')):
            return root
    raise FileNotFoundError(f'no tools/train.py next to {pkg} nor in {pkg}/.mim: reinstall '
                            'mmssis (pip install .) or run from its source checkout')


REPO = project_root()
# Stage subprocesses alive now: terminated when the caller is interrupted (Ctrl-C), so no
# training keeps running in the background.
_LIVE: set = set()
_PROGRESS = (' - mmengine - INFO - Iter(', 'coco/segm_mAP', 'Error', 'calibration')


def stage_env(threads: Optional[int] = None) -> Dict[str, str]:
    """Environment of a stage subprocess: this process' mmssis first on ``sys.path``;
    ``threads`` (when given) caps the OpenMP/MKL/torch threads of the process."""
    env = dict(os.environ,
               PYTHONPATH=osp.dirname(PKG) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def _run_logged(cmd: List[str], log_file: str, echo: bool = True, prefix: str = '',
                threads: Optional[int] = None) -> None:
    with open(log_file, 'w') as f:
        proc = subprocess.Popen(cmd, cwd=REPO, env=stage_env(threads), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        _LIVE.add(proc)
        try:
            _copy_output(proc, f, echo, prefix)
        finally:
            _LIVE.discard(proc)
        if proc.wait() != 0:
            raise RuntimeError(f'stage failed: {" ".join(cmd)}\nfull log: {log_file}')


def _copy_output(proc: subprocess.Popen, f, echo: bool, prefix: str) -> None:
    """Copy the process output to ``f``; echo progress lines with ``prefix``."""
    for line in proc.stdout:
        f.write(line)
        if echo and any(p in line for p in _PROGRESS):
            text = line.rstrip()
            # 'Iter(train) [ 20/300]  lr ... loss: ...': keep the head, not the tail
            text = text[text.find('Iter('):][:160] if 'Iter(' in text else text[-160:]
            print(f'  {prefix}{text}', flush=True)


def train_stage(config: str, work_dir: str, load_from: Optional[str] = None,
                options: Sequence[str] = (), force: bool = False, echo: bool = True,
                threads: Optional[int] = None, prefix: str = '') -> str:
    """Train ``config`` into ``work_dir``; returns ``<work_dir>/final.pth``.

    Args:
        config: Config path (relative to the repository root or absolute).
        work_dir: Work dir of the stage.
        load_from: Checkpoint whose weights initialise the model (stage-1 teacher).
        options: Extra ``--cfg-options`` ``key=value`` strings.
        force: Retrain even when ``final.pth`` exists.
        echo: Print training progress lines.
        threads: CPU threads of the training process (``None``: the library default).
            Parallel stages on a small CPU run fastest with 1 thread each.
        prefix: Printed before each echoed line (e.g. the stage name).
    """
    os.makedirs(work_dir, exist_ok=True)
    final = osp.join(work_dir, 'final.pth')
    if osp.isfile(final) and not force:
        return final
    # Unformatted config dumps: yapf formatting of a semi config costs seconds per dump.
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', work_dir,
           '--no-format-config']
    opts = list(options)
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')) and not force:
        cmd.append('--resume')
    elif load_from:
        opts.append(f'load_from={load_from}')
    if opts:
        cmd += ['--cfg-options', *opts]
    _run_logged(cmd, osp.join(work_dir, 'train.log'), echo, prefix, threads)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        last = f.read().strip()
    os.replace(last, final)
    os.remove(osp.join(work_dir, 'last_checkpoint'))
    return final


def evaluate_checkpoint(config: str, checkpoint: str, work_dir: str,
                        options: Optional[Dict] = None) -> Dict[str, float]:
    """Evaluate ``checkpoint`` with the config's test loop (in this process).

    Returns:
        mmdet's metric dict, e.g. ``coco/segm_mAP``, ``coco/bbox_mAP``.
    """
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmssis.utils import adapt_cfg_to_machine, install_safe_globals, register_all_modules
    register_all_modules(init_default_scope=False)
    install_safe_globals()  # mmengine's checkpoint loader: weights_only + allow-list
    cfg = Config.fromfile(config if osp.isabs(config) else osp.join(REPO, config),
                          format_python_code=False)
    if options:
        cfg.merge_from_dict(options)
    cfg.work_dir = work_dir
    cfg.load_from = checkpoint
    cfg.resume = False
    adapt_cfg_to_machine(cfg)
    return Runner.from_cfg(cfg).test()


def evaluate_checkpoint_subprocess(config: str, checkpoint: str, work_dir: str,
                                   threads: Optional[int] = None) -> Dict[str, float]:
    """:func:`evaluate_checkpoint` in a fresh process (safe to run beside other stages:
    mmengine's runner keeps global state, so two evaluations must not share a process).

    Returns:
        The metric dict (floats), also written to ``<work_dir>/metrics.json``.
    """
    os.makedirs(work_dir, exist_ok=True)
    out = osp.join(work_dir, 'metrics.json')
    cmd = [sys.executable, '-m', 'mmssis.apis.stages', 'evaluate', config, checkpoint,
           work_dir, out]
    _run_logged(cmd, osp.join(work_dir, 'eval.log'), echo=False, threads=threads)
    with open(out) as f:
        return json.load(f)


class StageRunner:
    """Runs stages (train + evaluate) as a dependency graph, ``jobs`` at a time.

    A stage is a dict: ``name`` (its work dir ``<work_dir>/<name>`` unless ``dir`` is
    given), ``config``, optional
    ``load_from`` (the name of the stage whose ``final.pth`` initialises it), ``after``
    (names of further stages it waits for), ``row`` (evaluate it when set) and ``options``
    (extra ``--cfg-options``). A stage with ``command`` (an argv list) runs that command
    instead of training (once: ``<work_dir>/<name>/done`` marks it, until a stage it
    depends on has a newer ``final.pth``). Stages whose dependencies are trained start
    while fewer than ``jobs`` train; each runs in subprocesses with ``cpu_count // jobs``
    threads. A stage's evaluation (one short inference pass) neither holds a slot nor
    delays the stages that load its checkpoint. Metrics land in :attr:`metrics`.

    Args:
        stages: Stage dicts, dependencies before dependants.
        work_dir: Root work dir; stage ``s`` trains into ``<work_dir>/<s.name>``.
        jobs: Maximum stages running at once.
        force: Retrain stages whose ``final.pth`` exists.
    """

    def __init__(self, stages: List[Dict], work_dir: str, jobs: int = 1,
                 force: bool = False) -> None:
        self.stages = stages
        self.work_dir = work_dir
        self.jobs = max(1, jobs)
        self.force = force
        self.threads = max(1, (os.cpu_count() or 1) // self.jobs)
        self.metrics: Dict[str, Dict[str, float]] = {}
        self.timings: Dict[str, float] = {}
        self.errors: Dict[str, BaseException] = {}
        # Stages past training, written by the stage threads: their dependants may start,
        # and while they evaluate they do not count against ``jobs``.
        self._lock = threading.Lock()
        self._trained: set = set()

    def stage_dir(self, name: str) -> str:
        """Work dir of stage ``name``: its ``dir`` if given, else ``<work_dir>/<name>``."""
        stage = next((s for s in self.stages if s['name'] == name), {})
        return stage.get('dir') or osp.join(self.work_dir, name)

    def _run_one(self, stage: Dict) -> None:
        name = stage['name']
        stage_dir = self.stage_dir(name)
        teacher = osp.join(self.stage_dir(stage['load_from']), 'final.pth') \
            if stage.get('load_from') else None
        try:
            t = time.time()
            if stage.get('command'):
                self._run_command(stage, stage_dir)
                self.timings[name] = time.time() - t
                return
            print(f'== stage {name}: {stage["config"]} ({self.threads} thread(s))', flush=True)
            ckpt = train_stage(stage['config'], stage_dir, load_from=teacher,
                               options=stage.get('options', ()), force=self.force,
                               threads=self.threads, prefix=f'[{name}] ')
            self.timings[f'train_{name}'] = time.time() - t
            with self._lock:
                self._trained.add(name)
            if stage.get('row'):
                t = time.time()
                done = osp.join(stage_dir, 'eval', 'metrics.json')
                if (not self.force and osp.isfile(done)
                        and osp.getmtime(done) >= osp.getmtime(ckpt)):
                    with open(done) as f:  # this checkpoint was evaluated already
                        self.metrics[name] = json.load(f)
                else:
                    self.metrics[name] = evaluate_checkpoint_subprocess(
                        stage['config'], ckpt, osp.join(stage_dir, 'eval'),
                        threads=self.threads)
                self.timings[f'eval_{name}'] = time.time() - t
                print(f'== {name}: segm_mAP {self.metrics[name]["coco/segm_mAP"]:.3f}',
                      flush=True)
        except BaseException as e:  # noqa: B902 - reported after the other stages stop
            self.errors[name] = e

    def _run_command(self, stage: Dict, stage_dir: str) -> None:
        done = osp.join(stage_dir, 'done')
        if osp.isfile(done) and not self.force:
            inputs = [osp.join(self.stage_dir(d), 'final.pth')
                      for d in self.dependencies(stage)]
            if not any(osp.isfile(i) and osp.getmtime(i) > osp.getmtime(done)
                       for i in inputs):
                return
        os.makedirs(stage_dir, exist_ok=True)
        print(f'== stage {stage["name"]}: {" ".join(stage["command"][1:])}', flush=True)
        _run_logged(list(stage['command']), osp.join(stage_dir, 'run.log'),
                    prefix=f'[{stage["name"]}] ', threads=self.threads)
        open(done, 'w').close()

    @staticmethod
    def dependencies(stage: Dict) -> List[str]:
        """Names of the stages ``stage`` waits for."""
        deps = list(stage.get('after', ()))
        if stage.get('load_from'):
            deps.append(stage['load_from'])
        return deps

    def run(self) -> None:
        """Start every stage whose dependencies are done while a slot is free; wait.

        Raises:
            RuntimeError: A stage failed (the running ones are let finish, no new one
                starts) or a dependency names no stage of the graph.
        """
        names = {s['name'] for s in self.stages}
        for stage in self.stages:
            missing = set(self.dependencies(stage)) - names
            if missing:
                raise RuntimeError(f'stage {stage["name"]!r} waits for unknown stage(s) '
                                   f'{sorted(missing)}')
        try:
            self._schedule()
        except BaseException:  # Ctrl-C: stop the trainings too
            for proc in list(_LIVE):
                proc.terminate()
            raise
        if self.errors:
            name, err = next(iter(self.errors.items()))
            raise RuntimeError(f'stage {name!r} failed: {err}')

    def _schedule(self) -> None:
        pending = list(self.stages)
        running: Dict[str, threading.Thread] = {}
        done: set = set()
        while pending or running:
            for name, thread in list(running.items()):
                if not thread.is_alive():
                    thread.join()
                    del running[name]
                    done.add(name)
            if self.errors:  # a failed stage: let the running ones finish, start no more
                pending = []
            with self._lock:
                ready = done | self._trained
                busy = len(set(running) - self._trained)
            for stage in list(pending):
                if busy >= self.jobs or any(d not in ready for d in self.dependencies(stage)):
                    continue
                busy += 1
                pending.remove(stage)
                thread = threading.Thread(target=self._run_one, args=(stage, ), daemon=True)
                running[stage['name']] = thread
                thread.start()
            time.sleep(0.5)


def _main(argv: Sequence[str]) -> None:
    if len(argv) != 5 or argv[0] != 'evaluate':
        raise SystemExit('usage: python -m mmssis.apis.stages evaluate CONFIG CHECKPOINT '
                         'WORK_DIR OUT_JSON')
    _, config, checkpoint, work_dir, out = argv
    metrics = evaluate_checkpoint(config, checkpoint, work_dir)
    with open(out, 'w') as f:
        json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2)


if __name__ == '__main__':
    _main(sys.argv[1:])
