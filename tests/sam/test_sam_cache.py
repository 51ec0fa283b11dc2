import os

import numpy as np
import pytest
import torch

from mmssis.sam import EmbeddingCache, ImageEmbedding, SamMaskRefiner, make_cache_key


def _emb(value: float, c: int = 4) -> ImageEmbedding:
    return ImageEmbedding(torch.full((1, c, 2, 2), float(value)), (10, 20), (8, 16))


def test_lru_eviction_and_hit_rate():
    cache = EmbeddingCache(max_items=2)
    assert cache.hit_rate == 0.0
    cache.put('a', _emb(1))
    cache.put('b', _emb(2))
    assert cache.get('a').embedding[0, 0, 0, 0] == 1  # 'a' becomes most recent
    cache.put('c', _emb(3))  # evicts 'b' (least recently used)
    assert 'b' not in cache and 'a' in cache and 'c' in cache
    assert cache.get('b') is None
    assert cache.get('c') is not None
    s = cache.stats()
    assert (s['hits'], s['misses'], s['evictions'], s['items']) == (2, 1, 1, 2)
    assert cache.hit_rate == pytest.approx(2 / 3)


def test_byte_bound():
    one = _emb(0).nbytes  # 4*2*2 float32 = 64 bytes
    cache = EmbeddingCache(max_items=None, max_bytes=2 * one)
    for i in range(5):
        cache.put(i, _emb(i))
    assert len(cache) == 2 and cache.nbytes == 2 * one
    assert cache.get(4) is not None and cache.get(0) is None
    big = EmbeddingCache(max_bytes=one - 1)
    big.put('x', _emb(1))
    assert len(big) == 0  # larger than the whole budget: not kept in memory


def test_put_copies_to_cpu_and_does_not_alias():
    cache = EmbeddingCache()
    emb = _emb(1)
    cache.put('k', emb)
    emb.embedding.fill_(5)
    assert cache.get('k').embedding.max() == 1


def test_disk_store(tmp_path):
    d = tmp_path / 'sam_cache'
    cache = EmbeddingCache(max_items=1, disk_dir=d)
    cache.put('img1.jpg#v0', _emb(1))
    cache.put('img2.jpg#v0', _emb(2))  # evicts img1 from memory, still on disk
    assert len(os.listdir(d)) == 2
    got = cache.get('img1.jpg#v0')
    assert got is not None and got.embedding[0, 0, 0, 0] == 1
    assert got.original_size == (10, 20) and got.input_size == (8, 16)
    assert cache.stats()['disk_hits'] == 1
    # a fresh process / cache object finds the entries on disk
    fresh = EmbeddingCache(max_items=4, disk_dir=d)
    assert fresh.get('img2.jpg#v0').embedding[0, 0, 0, 0] == 2
    assert fresh.get('img2.jpg#v0') is not None
    assert fresh.stats()['disk_hits'] == 1 and fresh.stats()['memory_hits'] == 1
    assert fresh.get('missing') is None
    fresh.clear(disk=True)
    assert len(fresh) == 0 and not os.listdir(d)


def test_half_storage():
    cache = EmbeddingCache(half=True)
    cache.put('k', _emb(0.5))
    assert cache.nbytes == _emb(0).nbytes // 2
    out = cache.get('k')
    assert out.embedding.dtype == torch.float32 and out.embedding.max() == 0.5


def test_make_cache_key():
    h = np.array([[1.0, 0, 5.0], [0, 1.0, 0], [0, 0, 1.0]])
    k1 = make_cache_key('a/img.jpg', dict(shape=(300, 500), homography=h))
    k2 = make_cache_key('a/img.jpg', dict(homography=h + 1e-9, shape=(300, 500)))
    k3 = make_cache_key('a/img.jpg', dict(shape=(300, 500), homography=h, flip='horizontal'))
    assert k1 == k2 and k1 != k3 and k1.startswith('a/img.jpg#')
    assert make_cache_key('a/img.jpg') == 'a/img.jpg'


def test_backend_encode_goes_through_cache(tiny_backend, image, count_calls, tmp_path):
    enc = count_calls(tiny_backend.model.image_encoder)
    refiner = SamMaskRefiner(tiny_backend, cache=dict(max_items=8, disk_dir=str(tmp_path)))
    key = make_cache_key('img.jpg', (300, 500))
    e1 = refiner.encode(image, cache_key=key)
    e2 = refiner.encode(image, cache_key=key)
    assert enc.calls == 1
    torch.testing.assert_close(e1.embedding, e2.embedding)
    assert refiner.cache.hit_rate == 0.5
    refiner.encode(image)  # no key: bypasses the cache
    assert enc.calls == 2
    # a stale entry (another image size under the same key) is an error naming the key,
    # not a silent re-encode over the cache
    with pytest.raises(ValueError, match='img.jpg.*stale'):
        refiner.encode(image[:100], cache_key=key)
    assert enc.calls == 2
