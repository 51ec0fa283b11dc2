"""The import graph of mmssis: acyclic, pure structures, metrics without models; and
``import mmssis`` changes no other library."""
import ast
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Set

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PKG = osp.join(REPO, 'mmssis')


def module_graph() -> Dict[str, Set[str]]:
    """``module -> mmssis modules it imports`` (module- and function-level imports; an
    import of a package counts as an import of its ``__init__``)."""
    mods = {}
    for d, _, files in os.walk(PKG):
        for f in files:
            if f.endswith('.py'):
                path = osp.join(d, f)
                name = osp.relpath(path, REPO)[:-3].replace(os.sep, '.')
                mods[name[:-9] if name.endswith('.__init__') else name] = path

    def resolve(name: str):
        while name and name not in mods:
            name = name.rpartition('.')[0]
        return name or None

    graph = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.endswith('__init__.py')
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            names: List[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    parts = mod.split('.') if is_pkg else mod.split('.')[:-1]
                    parts = parts[:len(parts) - node.level + 1]
                    base = '.'.join(parts + ([base] if base else []))
                names = [f'{base}.{a.name}' for a in node.names] + [base]
            for name in names:
                if name.split('.')[0] != 'mmssis':
                    continue
                target = resolve(name)
                if target and target != mod:
                    graph[mod].add(target)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    assert cycles({'a': {'b'}, 'b': set()}) == []


def test_no_import_cycle_in_mmssis():
    found = cycles(module_graph())
    assert not found, f'import cycles: {found}'


def test_structures_import_no_other_mmssis_module():
    graph = module_graph()
    for mod, deps in graph.items():
        if mod.startswith('mmssis.structures'):
            assert all(d.startswith('mmssis.structures') for d in deps), (mod, deps)


def test_evaluation_metrics_do_not_import_models_sam_or_hooks():
    graph = module_graph()
    for mod, deps in graph.items():
        if mod.startswith('mmssis.evaluation'):
            bad = {d for d in deps if d.startswith(('mmssis.models', 'mmssis.sam',
                                                    'mmssis.engine', 'mmssis.apis'))}
            assert not bad, (mod, bad)


def test_layers_import_only_downwards():
    """structures < evaluation < models / sam < engine < apis: nothing imports a layer above
    it (the hooks use the pseudo-label evaluations of ``mmssis.evaluation``, not apis)."""
    order = ['mmssis.structures', 'mmssis.evaluation', 'mmssis.models', 'mmssis.engine',
             'mmssis.apis']
    graph = module_graph()
    for mod, deps in graph.items():
        layer = next((i for i, p in enumerate(order) if mod.startswith(p)), None)
        if layer is None:
            continue
        above = {d for d in deps for p in order[layer + 1:] if d.startswith(p)}
        assert not above, (mod, above)


_SNAPSHOT = r'''
import json, sys
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.registry import MODEL_WRAPPERS, DefaultScope
from mmengine.runner.checkpoint import CheckpointLoader

def state():
    get = getattr(torch.serialization, 'get_safe_globals', lambda: [])
    return dict(
        getstate=repr(HistoryBuffer.__dict__.get('__getstate__')),
        schemes={k: repr(v) for k, v in CheckpointLoader._schemes.items()},
        # mmssis' allow-list entries (torch's own lazily imported modules add theirs)
        safe_globals=sorted(repr(g) for g in get()
                            if 'HistoryBuffer' in repr(g) or 'numpy' in repr(g)),
        scope=repr(DefaultScope.get_current_instance()),
        wrappers=sorted(MODEL_WRAPPERS.module_dict))

before = state()
import mmssis, mmssis.models, mmssis.sam, mmssis.engine, mmssis.datasets  # noqa
import mmssis.evaluation, mmssis.structures, mmssis.visualization, mmssis.apis  # noqa
after_import = state()
from mmssis.utils import register_all_modules
register_all_modules(init_default_scope=False)
after_register = state()
from mmssis.utils import install_safe_globals
install_safe_globals()
after_install = state()
from mmssis.utils.cpu_ddp import register_cpu_ddp
name = register_cpu_ddp()
assert register_cpu_ddp() == name  # idempotent
after_ddp = state()
print(json.dumps(dict(before=before, after_import=after_import,
                      after_register=after_register, after_install=after_install,
                      after_ddp=after_ddp)))
'''


@pytest.mark.slow
def test_import_mmssis_changes_no_other_library():
    import json
    out = subprocess.run([sys.executable, '-c', _SNAPSHOT], cwd=REPO, check=True,
                         capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=REPO)).stdout
    res = json.loads(out.strip().splitlines()[-1])
    assert res['after_import'] == res['before']
    # Registering only registers (into mmssis' own child registries).
    assert res['after_register'] == res['before']
    # The explicit switch does change mmengine's loader and torch's allow-list.
    assert res['after_install']['schemes'] != res['before']['schemes']
    assert res['after_install']['getstate'] != res['before']['getstate']
    assert len(res['after_install']['safe_globals']) > len(res['before']['safe_globals'])
    # The CPU DDP wrapper enters mmengine's root registry only when asked for.
    assert set(res['after_ddp']['wrappers']) - set(res['before']['wrappers']) == {
        'CPUAwareDistributedDataParallel'}
