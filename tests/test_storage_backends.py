"""Every image read outside mmdet's pipeline goes through mmengine.fileio with the data set's
``backend_args``: checked with an in-memory storage backend (a stand-in for S3 / petrel) that
holds files no local path can reach."""
import contextlib
import os
import tempfile

import numpy as np
import pytest
import torch
from mmengine.fileio import register_backend
from mmengine.fileio.backends import BaseStorageBackend
from mmengine.structures import InstanceData

from mmssis.datasets import UnlabeledImageFolder
from mmssis.sam import EmbeddingCache, SamMaskRefiner, SamModelBackend
from mmssis.testing import build_tiny_sam, make_semi_batch

STORE = {}


class MemoryBackend(BaseStorageBackend):
    """Files under ``mem://`` live in :data:`STORE` (bytes); reads are counted."""

    reads = []

    def get(self, filepath):
        self.reads.append(str(filepath))
        return STORE[str(filepath)]

    def get_text(self, filepath, encoding='utf-8'):
        return self.get(filepath).decode(encoding)

    def exists(self, filepath):
        return str(filepath) in STORE

    def isfile(self, filepath):
        return str(filepath) in STORE

    def isdir(self, filepath):
        prefix = str(filepath).rstrip('/') + '/'
        return any(k.startswith(prefix) for k in STORE)

    def join_path(self, filepath, *parts):
        return '/'.join([str(filepath).rstrip('/'), *[p.strip('/') for p in parts]])

    @contextlib.contextmanager
    def get_local_path(self, filepath):
        data = self.get(filepath)
        with tempfile.NamedTemporaryFile(suffix=os.path.splitext(str(filepath))[1],
                                         delete=False) as f:
            f.write(data)
        try:
            yield f.name
        finally:
            os.remove(f.name)

    def list_dir_or_file(self, dir_path, list_dir=True, list_file=True, suffix=None,
                         recursive=False):
        prefix = str(dir_path).rstrip('/') + '/'
        for key in sorted(STORE):
            if key.startswith(prefix):
                rel = key[len(prefix):]
                if recursive or '/' not in rel:
                    yield rel


register_backend('mmssis_test_memory', MemoryBackend, force=True, prefixes='mem')
ARGS = dict(backend='mmssis_test_memory')


def _encode(img: np.ndarray, ext: str = '.png') -> bytes:
    import cv2
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


@pytest.fixture(autouse=True)
def _store():
    STORE.clear()
    MemoryBackend.reads.clear()
    yield
    STORE.clear()


def test_unlabeled_image_folder_lists_and_reads_through_the_backend():
    rng = np.random.default_rng(0)
    STORE['mem://bucket/unl/a.png'] = _encode(rng.integers(0, 255, (20, 30, 3), np.uint8))
    STORE['mem://bucket/unl/sub/b.jpg'] = _encode(rng.integers(0, 255, (40, 10, 3), np.uint8),
                                                  '.jpg')
    STORE['mem://bucket/unl/notes.txt'] = b'not an image'
    ds = UnlabeledImageFolder(data_root='mem://bucket/', data_prefix=dict(img='unl/'),
                              metainfo=dict(classes=('a', 'b')), pipeline=[],
                              backend_args=ARGS)
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [i['img_path'] for i in infos] == ['mem://bucket/unl/a.png',
                                              'mem://bucket/unl/sub/b.jpg']
    assert [(i['height'], i['width']) for i in infos] == [(20, 30), (40, 10)]
    assert all(i['instances'] == [] for i in infos)


def test_sam_refiner_reads_original_images_through_the_backend():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    STORE['mem://bucket/img.png'] = _encode(img)
    ref = SamMaskRefiner(SamModelBackend(build_tiny_sam(img_size=64)), num_points=2,
                         use_box=True, seed=0, cache=EmbeddingCache(max_items=2),
                         embed_on='original', backend_args=ARGS)
    inputs, samples = make_semi_batch(batch=1, img_shape=(64, 64))
    sample = samples['unsup_teacher'][0]
    sample.set_metainfo(dict(img_path='mem://bucket/img.png'))
    logits = torch.full((1, 64, 64), -4.0)
    logits[0, 8:30, 8:30] = 4.0
    inst = InstanceData(mask_logits=logits, masks=logits > 0, labels=torch.tensor([0]),
                        scores=torch.tensor([0.9]), bboxes=torch.tensor([[8., 8, 30, 30]]))
    out, _ = ref.refine_batch(inputs['unsup_teacher'], [sample], [inst])
    assert out[0].masks.shape == (1, 64, 64)
    assert MemoryBackend.reads == ['mem://bucket/img.png']
    ref.refine_batch(inputs['unsup_teacher'], [sample], [inst])
    assert MemoryBackend.reads == ['mem://bucket/img.png']  # cached: not read again
