"""Split a COCO annotation file into labelled and unlabelled parts.

Two ways to pick the labelled images:

* ``percent`` + ``seed``: a seeded random sample (numpy ``Generator``) of
  ``round(N * percent / 100)`` images, as in MMDetection's semi-supervised
  COCO protocol; outputs ``{prefix}.{seed}@{percent}.json`` and
  ``{prefix}.{seed}@{percent}-unlabeled.json``.
* ``labeled_list``: a text file with one image file name per line (the fixed
  S4M Cityscapes lists, e.g. ``perc_5.txt``); outputs ``{prefix}.{tag}.json``
  and ``{prefix}.{tag}-unlabeled.json`` with ``tag`` defaulting to the list's
  stem. Names are matched on their *frame key*: the basename without extension
  cut before ``_gtFine`` / ``_leftImg8bit``, so the list's
  ``bremen_000041_000019_gtFine_instanceIds.png`` matches the image
  ``train/bremen/bremen_000041_000019_leftImg8bit.png``.

Both outputs keep every top-level key of the input (``categories``, ``info``,
``licenses``...); the unlabelled file has ``annotations: []`` (MMDetection's
semi-supervised convention). Images keep their ids and their input order.

The module also holds the light COCO JSON validation shared with
:class:`~mmssis.datasets.CheckedCocoDataset`; it needs neither mmdet nor
pycocotools.
"""
from __future__ import annotations

import json
import math
import os
import os.path as osp
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

# Suffixes after which Cityscapes file names carry modality, not identity.
_FRAME_KEY_MARKERS = ('_gtFine', '_gtCoarse', '_leftImg8bit')


class CocoFormatError(ValueError):
    """A COCO annotation file is not valid JSON or not COCO-shaped."""


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------
def read_json_file(path: str) -> Any:
    """Parse a JSON file, naming the file, line and column on syntax errors.

    Args:
        path: JSON file path.

    Returns:
        Any: The parsed document.

    Raises:
        CocoFormatError: On a syntax error or a non UTF-8 file.
    """
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise CocoFormatError(f"{path}: not a UTF-8 text file ({e})") from e
    return parse_json_text(text, path)


def parse_json_text(text: str, source: str) -> Any:
    """Parse JSON ``text`` read from ``source`` with a locating error.

    Args:
        text: The JSON document.
        source: File name used in error messages.

    Returns:
        Any: The parsed document.

    Raises:
        CocoFormatError: On a syntax error.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CocoFormatError(
            f'{source}: invalid JSON at line {e.lineno} column {e.colno}: '
            f'{e.msg}') from e


def _type_name(value: Any) -> str:
    return type(value).__name__


def _is_int(value: Any) -> bool:
    # bool is an int subclass but never a valid id.
    return isinstance(value, int) and not isinstance(value, bool)


def _require_list(doc: dict, key: str, source: str, optional: bool) -> list:
    if key not in doc:
        if optional:
            return []
        raise CocoFormatError(f"{source}: missing top-level key '{key}'")
    value = doc[key]
    if not isinstance(value, list):
        raise CocoFormatError(f"{source}: top-level key '{key}' must be a "
                              f'list, got {_type_name(value)}')
    return value


def _check_entries(entries: list, key: str, fields: Dict[str, tuple],
                   source: str) -> None:
    """Check each entry is a dict whose ``fields`` have the given types."""
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise CocoFormatError(f"{source}: '{key}[{i}]' must be an object, "
                                  f'got {_type_name(entry)}')
        for name, types in fields.items():
            if name not in entry:
                raise CocoFormatError(
                    f"{source}: '{key}[{i}]' is missing '{name}'")
            value = entry[name]
            ok = (_is_int(value) if types == (int, ) else
                  isinstance(value, types) and not isinstance(value, bool))
            if not ok:
                expected = '/'.join(t.__name__ for t in types)
                raise CocoFormatError(
                    f"{source}: '{key}[{i}].{name}' must be {expected}, got "
                    f'{_type_name(value)} {value!r:.40}')


_IMAGE_FIELDS = {'id': (int, ), 'file_name': (str, )}
_IMAGE_SIZE_FIELDS = {'height': (int, ), 'width': (int, )}
_ANN_FIELDS = {'image_id': (int, )}
_CAT_FIELDS = {'id': (int, ), 'name': (str, )}


def validate_coco_dict(doc: Any,
                       source: str,
                       require_annotations: bool = True,
                       require_image_size: bool = True) -> dict:
    """Check the COCO structure that the tools rely on.

    Checks: the top level is an object; ``images`` and ``categories`` (and
    ``annotations`` unless ``require_annotations`` is False, then a missing key
    counts as ``[]``) are lists of objects with correctly typed ``id``,
    ``file_name``, ``height``, ``width``, ``image_id``, ``name``; image and
    category ids are unique; every annotation refers to a known image.
    Per-annotation geometry is *not* checked here (see
    :class:`~mmssis.datasets.CheckedCocoDataset`).

    Args:
        doc: Parsed JSON document.
        source: File name used in error messages.
        require_annotations: Whether ``annotations`` must be present.
        require_image_size: Whether images need integer height/width.

    Returns:
        dict: ``doc`` itself, with ``annotations`` set to ``[]`` if absent.

    Raises:
        CocoFormatError: Naming ``source`` and the offending key.
    """
    if not isinstance(doc, dict):
        raise CocoFormatError(f'{source}: top level must be a JSON object, '
                              f'got {_type_name(doc)}')
    images = _require_list(doc, 'images', source, optional=False)
    categories = _require_list(doc, 'categories', source, optional=False)
    annotations = _require_list(doc, 'annotations', source,
                                optional=not require_annotations)
    doc.setdefault('annotations', annotations)

    image_fields = dict(_IMAGE_FIELDS)
    if require_image_size:
        image_fields.update(_IMAGE_SIZE_FIELDS)
    _check_entries(images, 'images', image_fields, source)
    _check_entries(categories, 'categories', _CAT_FIELDS, source)
    _check_entries(annotations, 'annotations', _ANN_FIELDS, source)

    image_ids = _unique_ids(images, 'images', source)
    _unique_ids(categories, 'categories', source)
    unknown = [a['image_id'] for a in annotations
               if a['image_id'] not in image_ids]
    if unknown:
        raise CocoFormatError(
            f'{source}: {len(unknown)} annotation(s) refer to unknown '
            f"image_id(s), e.g. {sorted(set(unknown))[:5]}")
    return doc


def _unique_ids(entries: list, key: str, source: str) -> Set[int]:
    ids: Set[int] = set()
    for i, entry in enumerate(entries):
        if entry['id'] in ids:
            raise CocoFormatError(
                f"{source}: duplicate id {entry['id']} in '{key}[{i}]'")
        ids.add(entry['id'])
    return ids


def load_coco_json(path: str, require_annotations: bool = True) -> dict:
    """Read and validate a COCO annotation file.

    Args:
        path: The JSON file.
        require_annotations: Whether the ``annotations`` key is mandatory.

    Returns:
        dict: The validated COCO dict.

    Raises:
        CocoFormatError: On syntax or structure errors (names ``path``).
    """
    return validate_coco_dict(read_json_file(path), path, require_annotations)


# --------------------------------------------------------------------------
# splitting
# --------------------------------------------------------------------------
def frame_key(name: str) -> str:
    """Identity of an image independent of folder, extension and modality.

    Args:
        name: A file name or path, e.g.
            ``train/ulm/ulm_000075_000019_leftImg8bit.png``.

    Returns:
        str: e.g. ``ulm_000075_000019``; plain names give their stem.
    """
    stem = osp.splitext(osp.basename(name.strip()))[0]
    for marker in _FRAME_KEY_MARKERS:
        pos = stem.find(marker)
        if pos > 0:
            stem = stem[:pos]
    return stem


def read_labeled_list(path: str) -> List[str]:
    """Read a list file: one name per line; blanks and ``#`` lines skipped.

    Args:
        path: Text file path.

    Returns:
        list[str]: Frame keys (see :func:`frame_key`), duplicates removed,
        in file order.
    """
    keys: Dict[str, None] = {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith('#'):
                keys[frame_key(line)] = None
    if not keys:
        raise ValueError(f'{path}: the labelled list is empty')
    return list(keys)


def num_labeled(num_images: int, percent: float) -> int:
    """Number of labelled images for ``percent`` (at least one).

    Rounds instead of truncating so 8% of 300 is 24 despite float error.

    Args:
        num_images: Images in the full set.
        percent: Labelled percentage in (0, 100).

    Returns:
        int: Labelled image count, in ``[1, num_images - 1]`` when possible.
    """
    count = max(1, int(math.floor(num_images * percent / 100 + 0.5)))
    return min(count, max(num_images - 1, 1))


def _check_percent(percent: float) -> float:
    percent = float(percent)
    if not 0 < percent < 100:
        raise ValueError(f'percent must be in (0, 100), got {percent:g}')
    return percent


def sample_labeled_ids(images: Sequence[dict], percent: float,
                       seed: int) -> Set[int]:
    """Seeded random choice of labelled image ids.

    Args:
        images: COCO ``images`` entries.
        percent: Labelled percentage in (0, 100).
        seed: Generator seed.

    Returns:
        set[int]: Ids of the labelled images.
    """
    rng = np.random.default_rng(seed)
    count = num_labeled(len(images), _check_percent(percent))
    picked = rng.permutation(len(images))[:count]
    return {images[int(i)]['id'] for i in picked}


def match_labeled_ids(images: Sequence[dict], keys: Iterable[str],
                      source: str, strict: bool = True) -> Set[int]:
    """Ids of the images whose frame key is listed.

    Args:
        images: COCO ``images`` entries.
        keys: Frame keys from :func:`read_labeled_list`.
        source: List file name for messages.
        strict: Raise when a listed name matches no image.

    Returns:
        set[int]: Ids of the labelled images.

    Raises:
        ValueError: Nothing matched, or (``strict``) some names unmatched.
    """
    by_key: Dict[str, List[int]] = {}
    for img in images:
        by_key.setdefault(frame_key(img['file_name']), []).append(img['id'])
    keys = list(keys)
    missing = [k for k in keys if k not in by_key]
    if len(missing) == len(keys) or (strict and missing):
        raise ValueError(
            f'{source}: {len(missing)} of {len(keys)} listed name(s) match '
            f'no image in the annotation file, e.g. {missing[:3]}')
    return {i for k in keys if k in by_key for i in by_key[k]}


def _subset(doc: dict, images: List[dict], annotations: List[dict]) -> dict:
    """Copy of ``doc`` with new images/annotations, other keys kept."""
    out = dict(images=images, annotations=annotations)
    out.update((k, v) for k, v in doc.items()
               if k not in ('images', 'annotations'))
    return out


def partition_coco(doc: dict, labeled_ids: Set[int],
                   show_progress: bool = False) -> Tuple[dict, dict]:
    """Split a COCO dict into labelled and unlabelled dicts.

    Args:
        doc: Validated COCO dict.
        labeled_ids: Image ids that go to the labelled part.
        show_progress: Show a progress bar over the annotations.

    Returns:
        tuple: ``(labeled, unlabeled)``; unlabelled has ``annotations: []``.
    """
    lab_imgs = [im for im in doc['images'] if im['id'] in labeled_ids]
    unl_imgs = [im for im in doc['images'] if im['id'] not in labeled_ids]
    anns = doc['annotations']
    if show_progress and anns:
        from mmengine.utils import track_iter_progress
        anns = track_iter_progress(anns)
    lab_anns = [a for a in anns if a['image_id'] in labeled_ids]
    return _subset(doc, lab_imgs, lab_anns), _subset(doc, unl_imgs, [])


def _dump_all(outputs: Sequence[Tuple[str, dict]]) -> None:
    """Write every file via temp files, renaming only when all succeeded."""
    tmps = []
    try:
        for path, obj in outputs:
            tmp = f'{path}.tmp{os.getpid()}'
            tmps.append(tmp)
            with open(tmp, 'w', encoding='utf-8') as f:
                json.dump(obj, f, separators=(',', ':'))
                f.write('\n')
        for (path, _), tmp in zip(outputs, tmps):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            if osp.exists(tmp):
                os.remove(tmp)


def _default_prefix(ann_file: str) -> str:
    return re.sub(r'\.json$', '', osp.basename(ann_file))


def split_coco(ann_file: str,
               out_dir: str,
               percent: Optional[float] = None,
               seed: int = 1,
               labeled_list: Optional[str] = None,
               tag: Optional[str] = None,
               prefix: Optional[str] = None,
               strict: bool = True,
               show_progress: bool = True) -> Tuple[str, str]:
    """Write the labelled and unlabelled parts of ``ann_file``.

    Args:
        ann_file: COCO annotation file with all training images.
        out_dir: Output directory (created if needed).
        percent: Labelled percentage in (0, 100); required without
            ``labeled_list``.
        seed: Seed of the random sample; also the ``{seed}`` in the names.
        labeled_list: Text file naming the labelled images instead.
        tag: Name part used with ``labeled_list`` (default: list stem).
        prefix: Output name prefix (default: ``ann_file`` stem).
        strict: With ``labeled_list``, fail when a listed name is unknown.
        show_progress: Show a progress bar.

    Returns:
        tuple[str, str]: ``(labeled_path, unlabeled_path)``.

    Raises:
        CocoFormatError: ``ann_file`` is malformed (nothing is written).
        ValueError: Bad ``percent`` or list.
    """
    if labeled_list is None and percent is None:
        raise ValueError('give either percent or labeled_list')
    if labeled_list is None:
        _check_percent(percent)
    doc = load_coco_json(ann_file)
    if not doc['images']:
        raise CocoFormatError(f"{ann_file}: 'images' is empty")
    if labeled_list is not None:
        keys = read_labeled_list(labeled_list)
        labeled_ids = match_labeled_ids(doc['images'], keys, labeled_list,
                                        strict)
        tag = tag or osp.splitext(osp.basename(labeled_list))[0]
    else:
        labeled_ids = sample_labeled_ids(doc['images'], percent, seed)
        tag = f'{seed}@{float(percent):g}'
    labeled, unlabeled = partition_coco(doc, labeled_ids, show_progress)
    prefix = prefix or _default_prefix(ann_file)
    os.makedirs(out_dir, exist_ok=True)
    lab_path = osp.join(out_dir, f'{prefix}.{tag}.json')
    unl_path = osp.join(out_dir, f'{prefix}.{tag}-unlabeled.json')
    _dump_all([(lab_path, labeled), (unl_path, unlabeled)])
    return lab_path, unl_path
