"""How much do the CPU's kernel ISA choices move the demo's numbers, and what does pinning cost?

The demo's supervised stage (`configs/demo/mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py`),
shortened to ``--iters`` iterations on one thread, under each setting of the libraries' ISA
switches: ATen's vectorised kernels (``ATEN_CPU_CAPABILITY``), oneDNN's convolutions
(``DNNL_MAX_CPU_ISA``), MKL's code path (``MKL_CBWR``, conditional numerical
reproducibility) and oneDNN switched off (``torch.backends.mkldnn.enabled = False``: ATen's
own convolutions over MKL GEMM). Records the loss of the last iteration (printed to 4
decimals by mmengine: the mean over the run's iterations, as the demo's logs print it) and
seconds per iteration (the logged mean over the run).

A setting makes two machines give the same numbers only if both run the same instructions
in the same order; this script, run on each machine, shows which settings agree across
machines. Writes ``--out`` (markdown) and the same name with ``.json``.
"""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'benchmarks'))
CONFIG = 'configs/demo/mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py'
SETTINGS = {
    'default': dict(env={}, mkldnn=True),
    'ATen avx2': dict(env=dict(ATEN_CPU_CAPABILITY='avx2'), mkldnn=True),
    'oneDNN AVX2': dict(env=dict(DNNL_MAX_CPU_ISA='AVX2'), mkldnn=True),
    'MKL CBWR AVX2': dict(env=dict(MKL_CBWR='AVX2'), mkldnn=True),
    'ATen avx2 + oneDNN AVX2 + MKL CBWR AVX2': dict(
        env=dict(ATEN_CPU_CAPABILITY='avx2', DNNL_MAX_CPU_ISA='AVX2', MKL_CBWR='AVX2'),
        mkldnn=True),
    'oneDNN off': dict(env={}, mkldnn=False),
    'oneDNN off + ATen avx2 + MKL CBWR AVX2': dict(
        env=dict(ATEN_CPU_CAPABILITY='avx2', MKL_CBWR='AVX2'), mkldnn=False),
    'oneDNN off + ATen default + MKL CBWR COMPATIBLE': dict(
        env=dict(ATEN_CPU_CAPABILITY='default', MKL_CBWR='COMPATIBLE'), mkldnn=False),
}
_RUN = """
import runpy, sys, torch
torch.backends.mkldnn.enabled = {mkldnn}
sys.argv = ['tools/train.py'] + {argv!r}
runpy.run_path('tools/train.py', run_name='__main__')
"""


def run(name: str, setting: dict, data_root: str, work: str, args) -> dict:
    argv = [CONFIG, '--work-dir', osp.join(work, re.sub(r'\W+', '_', name)), '--cfg-options',
            f'train_cfg.max_iters={args.iters}', f'train_cfg.val_interval={args.iters + 1}',
            'default_hooks.logger.interval=1',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False']
    env = dict(os.environ, PYTHONPATH=REPO, MMSSIS_DEMO_ROOT=data_root.rstrip('/') + '/',
               OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', **setting['env'])
    out = subprocess.run([sys.executable, '-c', _RUN.format(mkldnn=setting['mkldnn'],
                                                            argv=argv)],
                         cwd=REPO, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f'{name}: training failed\n{out.stderr[-3000:]}')
    lines = [l for l in (out.stdout + out.stderr).splitlines() if 'Iter(train) [' in l]
    # The logger's window (20) covers every iteration: the means over the run.
    loss = float(re.search(r' loss: ([0-9.]+)', lines[-1]).group(1))
    s_per_iter = float(re.search(r' time: ([0-9.]+)', lines[-1]).group(1))
    return dict(setting=name, env=setting['env'], mkldnn=setting['mkldnn'], loss=loss,
                s_per_iter=s_per_iter)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--iters', type=int, default=12)
    p.add_argument('--data-root', default=None,
                   help='demo data (default: generated into a temporary directory)')
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks/results/cpu_isa_pinning.md'))
    args = p.parse_args()
    from paper_scale_cpu import git_head

    from mmssis.utils.machine import cpu_info
    work = tempfile.mkdtemp(prefix='cpu_isa_')
    data_root = args.data_root or osp.join(work, 'data')
    if args.data_root is None:
        subprocess.run([sys.executable, 'tools/misc/generate_demo_data.py', '--out',
                        data_root, '--no-progress'], cwd=REPO, check=True,
                       env=dict(os.environ, PYTHONPATH=REPO))
    import torch
    rows = []
    for name, setting in SETTINGS.items():
        rows.append(run(name, setting, data_root, work, args))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]['s_per_iter']
    cpu = cpu_info()
    lines = [f'# Kernel ISA settings vs the demo\'s numbers ({git_head()})', '',
             f'Machine: {cpu["model"]} ({cpu["isa"]}; torch {torch.__version__} picks '
             f'{cpu["torch_kernels"]}), 1 thread. Command: `python '
             f'benchmarks/cpu_isa_pinning.py --iters {args.iters}`: the demo supervised '
             f'stage, {args.iters} iterations; the loss and s/iter that mmengine logs at '
             f'iteration {args.iters} (means over the run, 4 decimals).', '',
             '| setting | loss | s / iter | vs default |', '| --- | --- | --- | --- |']
    lines += [f'| {r["setting"]} | {r["loss"]:.4f} | {r["s_per_iter"]:.3f} | '
              f'{r["s_per_iter"] / base:.2f}x |' for r in rows]
    with open(args.out, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with open(osp.splitext(args.out)[0] + '.json', 'w') as f:
        json.dump(dict(head=git_head(), cpu=cpu['model'], isa=cpu['isa'], rows=rows), f,
                  indent=2)
    print(f'written {args.out}')


if __name__ == '__main__':
    main()
