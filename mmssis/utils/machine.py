"""What machine a figure was measured on: the CPU model and its vector ISA.

Kernels differ between AVX-512 and AVX2 machines (``benchmarks/cpu_isa_pinning.py``), so
every figure the demo and the benchmarks write names both.
"""
import os.path as osp
import platform
from typing import Dict


def cpu_info() -> Dict[str, str]:
    """``model`` (e.g. ``'Intel(R) Xeon(R) Processor'``), ``isa`` (its widest vector ISA:
    ``'AVX-512'``, ``'AVX2'`` or ``'no AVX2'``) and ``torch_kernels`` (the ISA torch's CPU
    kernels use, which ``ATEN_CPU_CAPABILITY`` can lower)."""
    import torch
    lines = []
    if osp.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            lines = f.read().splitlines()

    def first(key: str) -> str:
        return next((ln.split(':', 1)[1].strip() for ln in lines if ln.startswith(key)), '')

    flags = first('flags').split()
    isa = 'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else 'no AVX2'
    return dict(model=first('model name') or platform.processor() or 'unknown CPU', isa=isa,
                torch_kernels=torch.backends.cpu.get_cpu_capability())
