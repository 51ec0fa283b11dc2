"""mmssis.utils.machine.cpu_info: the CPU line of every figure."""
import torch

from mmssis.utils import machine


def test_cpu_info_reads_model_and_widest_isa(tmp_path, monkeypatch):
    fake = tmp_path / 'cpuinfo'
    fake.write_text('processor\t: 0\nmodel name\t: Test CPU 9000\n'
                    'flags\t\t: fpu sse avx avx2 fma\n\nprocessor\t: 1\n'
                    'model name\t: Test CPU 9000\nflags\t\t: fpu sse avx avx2 fma\n')
    real_isfile, real_open = machine.osp.isfile, open

    def fake_open(path, *args, **kwargs):
        return real_open(fake if path == '/proc/cpuinfo' else path, *args, **kwargs)

    monkeypatch.setattr(machine.osp, 'isfile',
                        lambda p: True if p == '/proc/cpuinfo' else real_isfile(p))
    monkeypatch.setattr('builtins.open', fake_open)
    info = machine.cpu_info()
    assert info['model'] == 'Test CPU 9000' and info['isa'] == 'AVX2'
    assert info['torch_kernels'] == torch.backends.cpu.get_cpu_capability()


def test_cpu_info_of_this_machine_names_an_isa():
    assert machine.cpu_info()['isa'] in ('AVX-512', 'AVX2', 'no AVX2')
