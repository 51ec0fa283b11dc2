"""LRU cache of SAM image embeddings (memory, optionally backed by a directory).

SAM's image encoder dominates the cost of pseudo-mask refinement (hundreds of ms
on GPU for ViT-H), while the same unlabeled image is seen once per epoch. Caching
the ``(1, 256, 64, 64)`` embedding (4 MiB in float32) per *view* removes that cost.

Keys are chosen by the caller and must identify the exact pixels that were
encoded: use :func:`make_cache_key` with the image path and a description of the
geometric view (flip, crop, resize / homography matrix, ...). Photometric
augmentations applied after the SAM view do not need to be part of the key.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from typing import Any, Dict, Hashable, Optional, Union

import numpy as np
import torch

from .embedding import ImageEmbedding

__all__ = ['EmbeddingCache', 'make_cache_key', 'original_cache_key', 'build_embedding_cache']


def make_cache_key(image_id: Union[str, os.PathLike, int], view: Any = None) -> str:
    """Builds a cache key from an image identity and a geometric view description.

    Args:
        image_id: Image path (or any stable id).
        view: Anything describing the geometry of the encoded view: numbers,
            strings, tuples/lists/dicts of them, numpy arrays or tensors (e.g. a
            ``(3, 3)`` homography, the image shape, a flip direction). Floats are
            rounded to 1e-6 before hashing so that recomputed matrices match.

    Returns:
        ``"<image_id>#<sha1 of view>"`` (just ``str(image_id)`` if ``view`` is None).
    """
    if view is None:
        return str(os.fspath(image_id) if isinstance(image_id, os.PathLike) else image_id)
    digest = hashlib.sha1(_canonical(view).encode()).hexdigest()[:16]
    return f'{os.fspath(image_id) if isinstance(image_id, os.PathLike) else image_id}#{digest}'


def original_cache_key(img_path: str) -> str:
    """Embedding-cache key of an un-augmented image: its resolved absolute path.

    Relative paths depend on the working directory: two runs started from different
    directories could otherwise share a disk cache entry for different images.
    """
    return os.path.realpath(img_path)


def _canonical(obj: Any) -> str:
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == 'f':
            obj = np.round(obj.astype(np.float64), 6) + 0.0  # +0.0 folds -0.0
        return f'nd{obj.shape}{obj.dtype.kind}:{obj.tolist()}'
    if isinstance(obj, float):
        return repr(round(obj, 6) + 0.0)
    if isinstance(obj, dict):
        return '{' + ','.join(f'{k!r}:{_canonical(obj[k])}' for k in sorted(obj, key=repr)) + '}'
    if isinstance(obj, (list, tuple)):
        return '[' + ','.join(_canonical(v) for v in obj) + ']'
    return repr(obj)


class EmbeddingCache:
    """Bounded in-memory LRU of :class:`ImageEmbedding` with an optional disk tier.

    Embeddings are stored on the CPU (optionally in float16). On a memory miss the
    disk directory (if any) is consulted and a found entry is promoted to memory.
    Every ``put`` is written through to disk (one ``torch.save`` file per key, named
    by the key's SHA-1; atomic rename, so several processes may share a directory).
    The disk tier is not size-bounded; delete the directory to reset it.

    Args:
        max_items: Maximum number of embeddings kept in memory (``None``: no limit).
        max_bytes: Maximum total tensor bytes kept in memory (``None``: no limit).
        disk_dir: Directory for the on-disk store (created if needed), or ``None``.
        half: Store tensors as float16 (halves memory / disk); ``get`` returns
            float32 again.

    Example:
        >>> cache = EmbeddingCache(max_items=256, disk_dir='work_dirs/sam_cache')
        >>> emb = refiner.encode(img, cache_key=make_cache_key(path, view))
    """

    def __init__(self, max_items: Optional[int] = 128, max_bytes: Optional[int] = None,
                 disk_dir: Optional[Union[str, os.PathLike]] = None,
                 half: bool = False) -> None:
        if max_items is not None and max_items < 0:
            raise ValueError('max_items must be >= 0 or None')
        if max_bytes is not None and max_bytes < 0:
            raise ValueError('max_bytes must be >= 0 or None')
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.disk_dir = os.fspath(disk_dir) if disk_dir is not None else None
        if self.disk_dir is not None:
            os.makedirs(self.disk_dir, exist_ok=True)
        self.half = half
        self._store: 'OrderedDict[str, ImageEmbedding]' = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()
        self.memory_hits = 0
        self.disk_hits = 0
        self.misses = 0
        self.evictions = 0

    # ---------------------------------------------------------------- queries
    @property
    def hits(self) -> int:
        return self.memory_hits + self.disk_hits

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses)`` over all ``get`` calls (0.0 before any)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    @property
    def nbytes(self) -> int:
        """Bytes of tensors currently held in memory."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key: Hashable) -> bool:
        k = str(key)
        return k in self._store or (self.disk_dir is not None
                                    and os.path.isfile(self._path(k)))

    def stats(self) -> Dict[str, Union[int, float]]:
        """Counters: hits, memory_hits, disk_hits, misses, evictions, items, bytes,
        hit_rate."""
        return dict(hits=self.hits, memory_hits=self.memory_hits, disk_hits=self.disk_hits,
                    misses=self.misses, evictions=self.evictions, items=len(self),
                    bytes=self._bytes, hit_rate=self.hit_rate)

    # ------------------------------------------------------------- get / put
    def get(self, key: Hashable) -> Optional[ImageEmbedding]:
        """Returns the cached embedding (float32, CPU) or ``None``; counts hit/miss."""
        k = str(key)
        with self._lock:
            emb = self._store.get(k)
            if emb is not None:
                self._store.move_to_end(k)
                self.memory_hits += 1
                return self._out(emb)
            emb = self._load(k)
            if emb is None:
                self.misses += 1
                return None
            self.disk_hits += 1
            self._insert(k, emb)
            return self._out(emb)

    def put(self, key: Hashable, emb: ImageEmbedding) -> None:
        """Stores ``emb`` (moved to CPU) under ``key``, evicting LRU entries."""
        k = str(key)
        stored = emb.to('cpu', torch.float16 if self.half else None)
        if stored is emb:  # already on CPU: never alias the caller's tensors
            stored = ImageEmbedding(emb.embedding.detach().clone(), emb.original_size,
                                    emb.input_size, _clone(emb.extras))
        with self._lock:
            self._insert(k, stored)
            if self.disk_dir is not None:
                self._save(k, stored)

    def clear(self, disk: bool = False) -> None:
        """Empties memory (and the disk directory's ``*.pt`` entries if ``disk``)."""
        with self._lock:
            self._store.clear()
            self._bytes = 0
            if disk and self.disk_dir is not None:
                for name in os.listdir(self.disk_dir):
                    if name.endswith('.pt'):
                        os.remove(os.path.join(self.disk_dir, name))

    # -------------------------------------------------------------- internals
    @staticmethod
    def _out(emb: ImageEmbedding) -> ImageEmbedding:
        return emb.to(dtype=torch.float32) if emb.embedding.dtype == torch.float16 else emb

    def _insert(self, k: str, emb: ImageEmbedding) -> None:
        if k in self._store:
            self._bytes -= self._store.pop(k).nbytes
        size = emb.nbytes
        if (self.max_items == 0) or (self.max_bytes is not None and size > self.max_bytes):
            return  # too large for memory; disk only
        self._store[k] = emb
        self._bytes += size
        while ((self.max_items is not None and len(self._store) > self.max_items)
               or (self.max_bytes is not None and self._bytes > self.max_bytes)):
            _, old = self._store.popitem(last=False)
            self._bytes -= old.nbytes
            self.evictions += 1

    def _path(self, k: str) -> str:
        return os.path.join(self.disk_dir, hashlib.sha1(k.encode()).hexdigest() + '.pt')

    def _save(self, k: str, emb: ImageEmbedding) -> None:
        path = self._path(k)
        payload = dict(key=k, embedding=emb.embedding, original_size=list(emb.original_size),
                       input_size=list(emb.input_size), extras=emb.extras)
        fd, tmp = tempfile.mkstemp(dir=self.disk_dir, suffix='.tmp')
        os.close(fd)
        try:
            torch.save(payload, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def _load(self, k: str) -> Optional[ImageEmbedding]:
        if self.disk_dir is None:
            return None
        path = self._path(k)
        if not os.path.isfile(path):
            return None
        try:
            payload = torch.load(path, map_location='cpu', weights_only=True)
        except Exception:  # truncated / foreign file: treat as a miss
            return None
        if not isinstance(payload, dict) or payload.get('key') != k:
            return None
        emb = ImageEmbedding(payload['embedding'], tuple(payload['original_size']),
                             tuple(payload['input_size']), payload.get('extras') or {})
        return emb.to(dtype=torch.float16) if self.half else emb


def _clone(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone(v) for v in obj)
    return obj


def build_embedding_cache(cache: Union[None, EmbeddingCache, Dict[str, Any]]
                          ) -> Optional[EmbeddingCache]:
    """``None`` / an :class:`EmbeddingCache` / its kwargs dict (``type`` ignored)."""
    if cache is None or isinstance(cache, EmbeddingCache):
        return cache
    if isinstance(cache, dict):
        cfg = dict(cache)
        cfg.pop('type', None)
        return EmbeddingCache(**cfg)
    raise TypeError(f'cache must be None, an EmbeddingCache or a dict, got {type(cache)}')
