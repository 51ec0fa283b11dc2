"""Fail fast on semi-supervised batch settings that mmdet would train with silently, or hang on.

mmdet's :class:`~mmdet.datasets.samplers.MultiSourceSampler` (and its aspect-ratio grouped
subclass ``GroupMultiSourceSampler``) draws ``num_per_source[i]`` images of source ``i``
into every per-GPU batch, where::

    num_per_source = [int(batch_size * r / sum(source_ratio)) for r in source_ratio]
    num_per_source[0] = batch_size - sum(num_per_source[1:])

Pitfalls this module turns into clear errors before any data is loaded:

* ``source_ratio`` that cannot be realised exactly in a batch is silently rounded
  (``batch_size=4, source_ratio=[1, 2]`` trains 2 + 2, not 1:2; ``batch_size=3,
  source_ratio=[1.5, 1.5]`` trains 2 + 1), and a source can get 0 images per batch; the
  error proposes a split that works;
* the data loader's ``batch_size`` differing from the sampler's makes batches straddle the
  sources (a "labelled" batch holding unlabelled images);
* an empty source makes the infinite sampler spin forever; a source smaller than its share
  of a global batch (``num_per_source[i] * world_size``) repeats images inside one batch;
* ``GroupMultiSourceSampler`` supports exactly two sources, and an aspect-ratio group
  (portrait/landscape) present in one source but absent from another hangs it the first time
  that group is drawn.

Call :func:`check_semi_sampler` from a training entry point (after the config is loaded and
the world size known; pass dataset sizes or built datasets once available).
"""
import json
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

_MULTI_SOURCE_SAMPLERS = ('MultiSourceSampler', 'GroupMultiSourceSampler')

__all__ = ['SemiSamplerConfigError', 'check_semi_sampler', 'per_source_counts',
           'count_images_in_ann_file', 'exact_split', 'propose_split']


class SemiSamplerConfigError(ValueError):
    """The semi-supervised sampler / batch settings can not train as intended."""


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _type_name(cfg: Any) -> str:
    typ = _get(cfg, 'type', '')
    name = typ if isinstance(typ, str) else getattr(typ, '__name__', str(typ))
    return name.split('.')[-1]


def per_source_counts(batch_size: int, source_ratio: Sequence[float]) -> List[int]:
    """Images per source in one per-GPU batch, exactly as mmdet's sampler computes them.

    Args:
        batch_size: Per-GPU batch size.
        source_ratio: Sampling ratio of each source.

    Returns:
        The per-source image counts (they sum to ``batch_size``).
    """
    total = sum(source_ratio)
    counts = [int(batch_size * r / total) for r in source_ratio]
    counts[0] = batch_size - sum(counts[1:])
    return counts


def exact_split(batch_size: int, source_ratio: Sequence[float]) -> Optional[List[int]]:
    """Images per source when ``source_ratio`` splits ``batch_size`` exactly (whole counts,
    each >= 1, the ones mmdet's sampler draws), else ``None``: the one test of "this batch
    realises this ratio"."""
    total = sum(source_ratio)
    wanted = [batch_size * r / total for r in source_ratio]
    if not all(abs(w - round(w)) < 1e-9 and round(w) >= 1 for w in wanted):
        return None
    counts = [int(round(w)) for w in wanted]
    return counts if counts == per_source_counts(batch_size, source_ratio) else None


def propose_split(batch_size: int, source_ratio: Sequence[float]) -> str:
    """A sentence proposing batch settings that realise ``source_ratio`` (or come closest).

    Two proposals: the same ``batch_size`` with whole per-source counts nearest to the
    ratio (largest remainder, every source >= 1), and the smallest larger batch size in
    which the ratio is exact (if one exists up to 4x).
    """
    total = sum(source_ratio)
    wanted = [batch_size * r / total for r in source_ratio]
    near = [max(1, int(w)) for w in wanted]
    order = sorted(range(len(wanted)), key=lambda i: wanted[i] - int(wanted[i]), reverse=True)
    i = 0
    while sum(near) < batch_size:
        near[order[i % len(order)]] += 1
        i += 1
    while sum(near) > batch_size and max(near) > 1:
        near[near.index(max(near))] -= 1
    text = (f'Valid: batch_size={batch_size} with source_ratio={near}'
            if sum(near) == batch_size else 'Valid')
    for bigger in range(batch_size + 1, 4 * batch_size + 1):
        split = exact_split(bigger, source_ratio)
        if split is not None:
            text += f', or batch_size={bigger} with source_ratio={split}'
            break
    return text + ' (train_dataloader.batch_size and sampler.batch_size alike).'


def count_images_in_ann_file(path: str, labelled: bool = False) -> Tuple[int, Dict[int, int]]:
    """Count the images of a COCO json and their aspect-ratio groups.

    Args:
        path: COCO annotation file.
        labelled: Count only images with at least one non-crowd annotation (what
            ``filter_empty_gt=True`` keeps, ignoring ``min_size``).

    Returns:
        ``(num_images, {0: portrait, 1: landscape})`` with mmdet's grouping
        (group 0 when ``width < height``).
    """
    with open(path, encoding='utf-8') as f:
        doc = json.load(f)
    images = doc.get('images', [])
    if labelled:
        with_gt = {a['image_id'] for a in doc.get('annotations', []) or []
                   if not a.get('iscrowd', 0)}
        images = [img for img in images if img.get('id') in with_gt]
    groups = {0: 0, 1: 0}
    for img in images:
        groups[0 if img.get('width', 0) < img.get('height', 0) else 1] += 1
    return len(images), groups


def _ann_path(dataset_cfg: Any) -> Optional[str]:
    ann = _get(dataset_cfg, 'ann_file')
    if not ann:
        return None
    root = _get(dataset_cfg, 'data_root') or ''
    return ann if osp.isabs(ann) else osp.join(root, ann)


def _describe(dataset_cfg: Any, index: int) -> str:
    path = _ann_path(dataset_cfg)
    return f'source {index} ({path})' if path else f'source {index}'


def _sizes_from_datasets(datasets: Sequence[Any]) -> Tuple[List[int], List[Dict[int, int]]]:
    sizes, groups = [], []
    for ds in datasets:
        sizes.append(len(ds))
        g = {0: 0, 1: 0}
        if hasattr(ds, 'get_data_info'):
            for i in range(len(ds)):
                info = ds.get_data_info(i)
                g[0 if info['width'] < info['height'] else 1] += 1
            groups.append(g)
        else:
            groups.append(None)
    return sizes, groups


def check_semi_sampler(cfg: Any,
                       world_size: int = 1,
                       dataset_sizes: Optional[Sequence[int]] = None,
                       datasets: Optional[Sequence[Any]] = None,
                       group_sizes: Optional[Sequence[Dict[int, int]]] = None,
                       read_ann_files: bool = False,
                       strict_sum: bool = False) -> Optional[List[int]]:
    """Check a semi-supervised (multi-source) train data loader config; raise on problems.

    Args:
        cfg: The full config (with ``train_dataloader``) or the ``train_dataloader`` dict.
        world_size: Number of training processes (GPUs).
        dataset_sizes: Number of images of each source dataset, if known.
        datasets: Built source datasets (e.g. ``runner.train_dataloader.dataset.datasets``);
            gives sizes and aspect-ratio groups.
        group_sizes: Per source ``{0: portrait, 1: landscape}`` image counts, if known.
        read_ann_files: Count images in the sources' annotation files when they exist
            (labelled sources: images with annotations). Costs a json parse per file.
        strict_sum: Require ``sum(source_ratio) == batch_size``. Otherwise a ratio whose
            sum divides ``batch_size`` exactly (``[1, 1]`` with 4 -> 2 + 2) is accepted.

    Returns:
        Images per source in one per-GPU batch, or None when the config does not use a
        multi-source sampler (nothing to check).

    Raises:
        SemiSamplerConfigError: With a message naming ``batch_size``, ``source_ratio`` and
            the world size.
    """
    loader = cfg
    if hasattr(cfg, 'get') and cfg.get('train_dataloader', None) is not None:
        loader = cfg.get('train_dataloader')
    if loader is None:
        return None
    sampler = _get(loader, 'sampler') or {}
    if _type_name(sampler) not in _MULTI_SOURCE_SAMPLERS:
        return None
    stype = _type_name(sampler)
    dataset = _get(loader, 'dataset') or {}
    sources = list(_get(dataset, 'datasets') or [])
    batch_size = _get(sampler, 'batch_size')
    loader_bs = _get(loader, 'batch_size')
    ratio = _get(sampler, 'source_ratio')
    ctx = (f'(train_dataloader.batch_size={loader_bs}, sampler batch_size={batch_size}, '
           f'source_ratio={list(ratio) if ratio is not None else None}, '
           f'world size={world_size})')

    def fail(msg: str) -> None:
        raise SemiSamplerConfigError(f'{stype}: {msg} {ctx}')

    if not isinstance(world_size, int) or world_size < 1:
        fail(f'world size must be a positive integer, got {world_size!r}.')
    if _type_name(dataset) != 'ConcatDataset' or not sources:
        fail(f'the train dataset must be a ConcatDataset of the source datasets, got '
             f"{_type_name(dataset) or 'nothing'}.")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        fail(f'sampler batch_size must be a positive integer, got {batch_size!r}.')
    if loader_bs != batch_size:
        fail('train_dataloader.batch_size must equal the sampler\'s batch_size, otherwise '
             'batches straddle the sources.')
    if not isinstance(ratio, (list, tuple)) or not ratio:
        fail('source_ratio must be a non-empty list.')
    if len(ratio) != len(sources):
        fail(f'source_ratio has {len(ratio)} entries for {len(sources)} source datasets.')
    if any(isinstance(r, bool) or not isinstance(r, (int, float)) or r < 1 for r in ratio):
        fail('every source_ratio entry must be a number >= 1 (an image count per batch).')
    if stype == 'GroupMultiSourceSampler' and len(sources) != 2:
        fail(f'GroupMultiSourceSampler supports exactly 2 sources, got {len(sources)}.')

    total = sum(ratio)
    counts = per_source_counts(batch_size, ratio)
    wanted = [batch_size * r / total for r in ratio]
    if strict_sum and total != batch_size:
        fail(f'sum(source_ratio)={total:g} must equal batch_size={batch_size} '
             f'(per-GPU images per source).')
    if exact_split(batch_size, ratio) is None:
        fail(f'source_ratio {list(ratio)} cannot be realised in batches of {batch_size}: '
             f'it asks for {[round(w, 3) for w in wanted]} images per source and mmdet '
             f'would draw {counts}. {propose_split(batch_size, ratio)}')
    if min(counts) < 1:
        fail(f'a source gets {min(counts)} images per batch ({counts}).')

    # Dataset sizes, from the most to the least direct information.
    groups: List[Optional[Dict[int, int]]] = (list(group_sizes) if group_sizes is not None
                                              else [None] * len(sources))
    sizes: List[Optional[int]] = (list(dataset_sizes) if dataset_sizes is not None
                                  else [None] * len(sources))
    if datasets is not None:
        sizes, groups = _sizes_from_datasets(datasets)
    elif read_ann_files:
        for i, src in enumerate(sources):
            path = _ann_path(src)
            if sizes[i] is None and path and osp.isfile(path):
                filt = _get(src, 'filter_cfg') or {}
                n, g = count_images_in_ann_file(
                    path, labelled=bool(_get(filt, 'filter_empty_gt', False)))
                sizes[i] = n
                if groups[i] is None:
                    groups[i] = g
    if len(sizes) != len(sources) or len(groups) != len(sources):
        fail(f'got sizes for {len(sizes)} datasets but the config has {len(sources)}.')

    for i, (src, size, num) in enumerate(zip(sources, sizes, counts)):
        if size is None:
            continue
        where = _describe(src, i)
        if size < 1:
            fail(f'{where} is empty: the sampler would wait forever for its images.')
        if size < num * world_size:
            fail(f'{where} has {size} images, fewer than its share of one global batch '
                 f'({num} per GPU x {world_size} GPUs = {num * world_size}); images would '
                 f'repeat inside a batch. Use fewer GPUs, a smaller share or more data.')

    if stype == 'GroupMultiSourceSampler' and all(g is not None for g in groups):
        for group, name in ((0, 'portrait (width < height)'), (1, 'landscape')):
            present = [g[group] for g in groups]
            if sum(present) > 0 and min(present) == 0:
                empty = [_describe(sources[i], i) for i, n in enumerate(present) if n == 0]
                fail(f'{name} images exist in some sources but not in {", ".join(empty)}: '
                     f'GroupMultiSourceSampler would hang when it draws that group. Use '
                     f'MultiSourceSampler or make both sources contain both orientations.')
    return counts
