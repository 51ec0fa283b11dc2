"""A COCO dataset that validates its annotation file before loading it.

MMDetection's :class:`~mmdet.datasets.CocoDataset` trusts its JSON: a syntax
error surfaces as a bare ``JSONDecodeError``, a missing key as a ``KeyError``
deep inside pycocotools, a missing image only when the data loader reaches it
(possibly hours into training), and a degenerate polygon as a crash or a NaN
loss in a mask head. :class:`CheckedCocoDataset` front-loads those failures
with messages that name the file and the key, and drops degenerate
annotations with one logged summary instead of crashing later.

Notes on empty images:

* Images without instances are kept by the loader. For *labelled* training
  use ``filter_cfg=dict(filter_empty_gt=True)`` (MMDetection drops them then);
  for *unlabelled* data use ``filter_cfg=dict(filter_empty_gt=False)`` or
  ``None``, otherwise every image would be dropped (a training set left
  empty raises ``SetupError``).
* An unlabelled file may have ``annotations: []`` or no ``annotations`` key at
  all; a missing key is treated as ``[]`` (logged at INFO level).
"""
from __future__ import annotations

import copy
import io
import math
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Tuple, Union

from mmdet.datasets import CocoDataset
from mmengine.fileio import exists, get, get_local_path
from mmengine.logging import MMLogger
from pycocotools import mask as mask_utils

from mmssis.registry import DATASETS
from mmssis.utils.preflight import SetupError
from .coco_split import CocoFormatError, parse_json_text, validate_coco_dict

_MISSING_FILE_MODES = ('error', 'skip')
_UNKNOWN_CATEGORY_MODES = ('error', 'drop')
_MAX_NAMED = 5  # file names quoted in messages, the rest are counted


class CorruptImageError(OSError):
    """One or more image files cannot be decoded."""


class ImageSizeMismatchError(ValueError):
    """An image file's decoded size differs from its json ``height`` / ``width``."""


#: EXIF orientations that swap width and height (decoders rotate these images).
_EXIF_TRANSPOSED = (5, 6, 7, 8)


def decoded_size(data: Union[bytes, str]) -> Tuple[int, int]:
    """``(height, width)`` of an image as mmcv decodes it (EXIF orientation applied),
    from the file header only.

    Args:
        data: The file's bytes, or a local path (only the header is read).

    Raises:
        OSError: Not a readable image.
    """
    from PIL import Image
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
        width, height = im.size
        orientation = im.getexif().get(0x0112, 1)
    if orientation in _EXIF_TRANSPOSED:
        width, height = height, width
    return int(height), int(width)


def _fmt_names(names: List[str]) -> str:
    shown = ', '.join(names[:_MAX_NAMED])
    more = len(names) - _MAX_NAMED
    return shown + (f' (+{more} more)' if more > 0 else '')


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


# --------------------------------------------------------------------------
# annotation geometry checks
# --------------------------------------------------------------------------
def _bbox_problem(bbox, height: int, width: int) -> Optional[str]:
    """Reason why ``bbox`` (xywh) is unusable, or None."""
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
            and all(_is_number(v) for v in bbox)):
        return 'malformed bbox'
    x, y, w, h = bbox
    if w <= 1 or h <= 1:
        return 'box w/h <= 1'
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        return 'box outside image'
    return None


def _polygon_mask_area(polys: list, height: int,
                       width: int) -> Tuple[list, int, int]:
    """Keep valid polygons; return ``(kept, n_dropped_parts, area)``."""
    kept = [p for p in polys
            if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0
            and all(_is_number(v) for v in p)]
    if not kept:
        return kept, len(polys), 0
    rles = mask_utils.frPyObjects(kept, height, width)
    area = int(mask_utils.area(mask_utils.merge(rles)))
    return kept, len(polys) - len(kept), area


def _rle_mask_area(rle: dict, height: int, width: int) -> Optional[int]:
    """Area of an RLE mask, or None if it is malformed or mis-sized."""
    size, counts = rle.get('size'), rle.get('counts')
    if not (isinstance(size, (list, tuple)) and len(size) == 2
            and list(size) == [height, width]):
        return None
    try:
        if isinstance(counts, list):  # uncompressed RLE (crowd regions)
            return int(mask_utils.area(mask_utils.frPyObjects(rle, height,
                                                               width)))
        if isinstance(counts, (str, bytes)):
            return int(mask_utils.area(rle))
    except Exception:  # pycocotools raises assorted types on bad counts
        return None
    return None


def _mask_bbox(seg: Union[list, dict], height: int, width: int) -> List[float]:
    """Tight ``[x, y, w, h]`` box of a (validated) polygon list or RLE mask."""
    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    elif isinstance(seg.get('counts'), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(seg, height, width)
    else:
        rle = seg
    return [float(v) for v in mask_utils.toBbox(rle)]


def check_annotation(ann: dict, height: int, width: int,
                     require_mask: bool) -> Tuple[Optional[str], List[str]]:
    """Validate and repair one annotation in place (a missing ``bbox`` is rebuilt from
    the mask, a missing ``area`` recomputed).

    Args:
        ann: A COCO annotation (modified in place by repairs).
        height: Height of its image.
        width: Width of its image.
        require_mask: Whether an annotation without a mask is degenerate.

    Returns:
        tuple: ``(drop_reason or None, [repair notes])``.
    """
    repairs: List[str] = []
    if not (isinstance(ann.get('category_id'), int)
            and not isinstance(ann.get('category_id'), bool)):
        return 'missing/bad category_id', repairs
    # No bbox (None, [] or no key) but a mask: the box is rebuilt from the mask below.
    bbox = ann.get('bbox')
    no_box = bbox is None or (isinstance(bbox, (list, tuple)) and len(bbox) == 0)
    if not no_box:
        reason = _bbox_problem(bbox, height, width)
        if reason:
            return reason, repairs
    seg = ann.get('segmentation')
    area: Optional[int] = None
    if isinstance(seg, list) and seg:
        kept, n_bad, area = _polygon_mask_area(seg, height, width)
        if not kept:
            return 'polygon < 3 points', repairs
        if n_bad:
            ann['segmentation'] = kept
            repairs.append('invalid polygon part removed')
    elif isinstance(seg, dict):
        area = _rle_mask_area(seg, height, width)
        if area is None:
            return 'malformed/mis-sized RLE', repairs
    elif seg not in (None, []):
        return 'malformed segmentation', repairs
    elif require_mask:
        return 'no mask', repairs
    if area == 0:
        return 'zero-area mask', repairs
    if no_box:
        if area is None:
            return 'no bbox and no mask', repairs
        ann['bbox'] = _mask_bbox(ann['segmentation'], height, width)
        repairs.append('bbox rebuilt from mask')
        reason = _bbox_problem(ann['bbox'], height, width)
        if reason:
            return reason, repairs
    if not _is_number(ann.get('area')) or ann['area'] <= 0:
        # mmdet reads ann['area'] unconditionally and skips area <= 0.
        bbox = ann['bbox']
        ann['area'] = area if area is not None else bbox[2] * bbox[3]
        repairs.append('area recomputed')
    return None, repairs


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """:class:`~mmdet.datasets.CocoDataset` with up-front validation.

    Before building the COCO index the annotation file is checked:

    * JSON syntax errors raise :class:`CocoFormatError` (a ``ValueError``)
      naming the file, line and column;
    * missing or mistyped top-level keys / entry fields, duplicate ids and
      annotations whose ``image_id`` is unknown raise the same, naming the
      file and the key;
    * degenerate annotations (polygons with < 3 points, zero-area or
      mis-sized masks, boxes with w/h <= 1 or fully outside the image,
      missing masks when ``require_masks``) are dropped and summarised in one
      warning; a missing or non-positive ``area`` is recomputed, a missing
      ``bbox`` rebuilt from the mask (polygon or RLE);
    * annotations of json categories that are not in the metainfo ``classes``
      (or of no json category) raise :class:`~mmssis.utils.preflight.SetupError`
      naming the file, the categories and their instance counts (CocoDataset
      drops them silently: those objects train as background); with
      ``unknown_categories='drop'`` they are dropped with a counted warning;
    * a training set (not ``test_mode``) left without images by the filters
      (``filter_cfg``, dropped annotations) raises ``SetupError`` naming the file,
      the image count and what was dropped (mmengine fails with ``need at least
      one array to concatenate``);
    * with ``check_files`` (and always with ``verify_images``) every image
      file must exist; missing files raise ``FileNotFoundError`` naming the
      count and the first few, or with ``missing_files='skip'`` the images
      (and their annotations) are dropped with a warning;
    * with ``check_sizes`` (and always with ``verify_images``) each image's size
      as decoded (EXIF orientation applied, read from the file header) must be
      the json's ``height`` x ``width``: else :class:`ImageSizeMismatchError`
      naming the files and both sizes, or the same counted skip. Inside a running
      job the same mismatch is an :class:`ImageSizeMismatchError` naming the
      file when the image is loaded (instead of a reshape error in the masks).

    The counts end up in :attr:`check_report`.

    Args:
        *args: Forwarded to :class:`~mmdet.datasets.CocoDataset`.
        check_files: Check that every image file exists at load time.
        missing_files: ``'error'`` or ``'skip'``; also applies to corrupt
            images found by ``verify_images`` and to size mismatches.
        check_sizes: Compare every image's decoded size with its json entry at
            load time (reads each file's header).
        verify_images: Decode every image with PIL at load time and report
            corrupt/truncated files by name (slow on large data sets).
        check_annotations: Run the per-annotation geometry checks (costs a
            few seconds per 100k annotations).
        require_masks: Treat annotations without ``segmentation`` as
            degenerate (instance segmentation needs a mask per instance).
        unknown_categories: ``'error'`` or ``'drop'``: what to do with
            annotations whose category is not in the metainfo ``classes``.
        **kwargs: Forwarded to :class:`~mmdet.datasets.CocoDataset`.
    """

    def __init__(self,
                 *args,
                 check_files: bool = False,
                 missing_files: str = 'error',
                 check_sizes: bool = False,
                 verify_images: bool = False,
                 check_annotations: bool = True,
                 require_masks: bool = True,
                 unknown_categories: str = 'error',
                 **kwargs) -> None:
        if missing_files not in _MISSING_FILE_MODES:
            raise ValueError(f'missing_files must be one of '
                             f'{_MISSING_FILE_MODES}, got {missing_files!r}')
        if unknown_categories not in _UNKNOWN_CATEGORY_MODES:
            raise ValueError(f'unknown_categories must be one of '
                             f'{_UNKNOWN_CATEGORY_MODES}, got {unknown_categories!r}')
        self.unknown_categories = unknown_categories
        # Set before super().__init__, which may call load_data_list.
        self.check_files = check_files or verify_images or check_sizes
        self.check_sizes = check_sizes or verify_images
        self.missing_files = missing_files
        self.verify_images = verify_images
        self.check_annotations = check_annotations
        self.require_masks = require_masks
        self.check_report: Dict[str, object] = {}
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------
    def load_data_list(self) -> List[dict]:
        """Validate the annotation file, then load it like CocoDataset.

        Returns:
            list[dict]: Parsed data infos.
        """
        doc = self._read_and_validate()
        report: Dict[str, object] = {}
        if self.check_files:
            self._check_image_files(doc, report)
        self._check_categories(doc, report)
        if self.check_annotations:
            self._check_annotations(doc, report)
        self.check_report = report
        coco = self._build_coco(doc)
        return self._parse_coco(coco)

    def _read_and_validate(self) -> dict:
        with get_local_path(self.ann_file,
                            backend_args=self.backend_args) as local_path:
            with open(local_path, 'rb') as f:
                raw = f.read()
        try:
            text = raw.decode('utf-8')
        except UnicodeDecodeError as e:
            raise CocoFormatError(
                f'{self.ann_file}: not a UTF-8 text file ({e})') from e
        doc = parse_json_text(text, self.ann_file)
        had_annotations = isinstance(doc, dict) and 'annotations' in doc
        doc = validate_coco_dict(doc, self.ann_file,
                                 require_annotations=False)
        if not had_annotations:
            self._logger().info(f"{self.ann_file}: no 'annotations' key, "
                                'loading it as unlabelled data')
        self._check_ann_ids(doc)
        return doc

    def _check_ann_ids(self, doc: dict) -> None:
        """Give id-less annotations an id; reject duplicates."""
        anns = doc['annotations']
        ids = [a['id'] for a in anns if 'id' in a]
        if self.ANN_ID_UNIQUE and len(set(ids)) != len(ids):
            dup = sorted(i for i, n in Counter(ids).items() if n > 1)
            raise CocoFormatError(f'{self.ann_file}: duplicate annotation '
                                  f'id(s) {dup[:_MAX_NAMED]}')
        next_id = max((i for i in ids if _is_number(i)), default=0) + 1
        for ann in anns:
            if 'id' not in ann:
                # pycocotools indexes annotations by id (KeyError otherwise).
                ann['id'] = next_id
                next_id += 1

    # ------------------------------------------------------------------
    def _image_path(self, img: dict) -> str:
        return osp.join(self.data_prefix.get('img', ''), img['file_name'])

    def _check_image_files(self, doc: dict, report: dict) -> None:
        """Find missing, corrupt and mis-sized images; raise or drop."""
        missing, corrupt, sized = [], [], []
        for img in doc['images']:
            path = self._image_path(img)
            if not exists(path, backend_args=self.backend_args):
                missing.append(path)
                continue
            if self.verify_images and not self._decodes(path):
                corrupt.append(path)
                continue
            if self.check_sizes:
                try:
                    with get_local_path(path, backend_args=self.backend_args) as local:
                        size = decoded_size(local)
                except OSError:
                    corrupt.append(path)
                    continue
                if size != (img['height'], img['width']):
                    sized.append(f"{path} (file {size[0]}x{size[1]}, json "
                                 f"{img['height']}x{img['width']})")
        report['missing_files'] = missing
        report['corrupt_files'] = corrupt
        report['size_mismatches'] = sized
        if self.missing_files == 'error':
            if missing:
                raise FileNotFoundError(
                    f'{self.ann_file}: {len(missing)} image file(s) not '
                    f'found: {_fmt_names(missing)}')
            if corrupt:
                raise CorruptImageError(
                    f'{self.ann_file}: {len(corrupt)} image file(s) cannot '
                    f'be decoded: {_fmt_names(corrupt)}')
            if sized:
                raise ImageSizeMismatchError(
                    f'{self.ann_file}: {len(sized)} image file(s) whose decoded size '
                    f'(height x width, EXIF orientation applied) differs from the json: '
                    f'{_fmt_names(sized)}. Fix the json width/height (or the files), or '
                    "skip them with missing_files='skip'")
            return
        bad = set(missing) | set(corrupt) | {s.split(' (file ')[0] for s in sized}
        if not bad:
            return
        self._logger().warning(
            f'{self.ann_file}: skipping {len(missing)} missing, {len(corrupt)} '
            f'corrupt and {len(sized)} mis-sized image file(s): '
            f'{_fmt_names(sorted(bad))}')
        keep_ids = {im['id'] for im in doc['images']
                    if self._image_path(im) not in bad}
        doc['images'] = [im for im in doc['images'] if im['id'] in keep_ids]
        doc['annotations'] = [a for a in doc['annotations']
                              if a['image_id'] in keep_ids]

    def prepare_data(self, idx: int):
        """The pipeline of ``idx``, checking after loading that the image has the size
        its json entry says (mmdet would fail later reshaping masks, naming no file).

        Raises:
            ImageSizeMismatchError: Naming the file and both sizes.
        """
        data = self.get_data_info(idx)
        expected = (data.get('height'), data.get('width'))
        for transform in self.pipeline.transforms:
            data = transform(data)
            if data is None:
                return None
            if expected is not None and 'ori_shape' in data:
                got = tuple(int(v) for v in data['ori_shape'][:2])
                if None not in expected and got != tuple(int(v) for v in expected):
                    raise ImageSizeMismatchError(
                        f"{data.get('img_path')}: the image decodes to {got[0]}x{got[1]} "
                        f'(height x width) but {self.ann_file} says '
                        f'{expected[0]}x{expected[1]}; fix the json (EXIF-rotated photos '
                        "do this) or check the data set with check_sizes=True")
                expected = None  # checked once, right after loading
        return data

    def _decodes(self, path: str) -> bool:
        from PIL import Image
        try:
            data = get(path, backend_args=self.backend_args)
            # verify() checks structure/CRCs but not pixel data; load()
            # decodes it and catches truncated files. Needs two opens.
            with Image.open(io.BytesIO(data)) as im:
                im.verify()
            with Image.open(io.BytesIO(data)) as im:
                im.load()
        except Exception:
            return False
        return True

    def _check_annotations(self, doc: dict, report: dict) -> None:
        """Drop degenerate annotations, recording reasons and repairs."""
        sizes = {im['id']: (im['height'], im['width']) for im in doc['images']}
        dropped: Counter = Counter()
        repaired: Counter = Counter()
        kept = []
        for ann in doc['annotations']:
            reason, repairs = check_annotation(ann, *sizes[ann['image_id']],
                                               self.require_masks)
            repaired.update(repairs)
            if reason is None:
                kept.append(ann)
            else:
                dropped[reason] += 1
        doc['annotations'] = kept
        report['dropped_annotations'] = dict(dropped)
        report['repaired_annotations'] = dict(repaired)
        if dropped:
            detail = ', '.join(f'{n} {r}' for r, n in dropped.most_common())
            self._logger().warning(
                f'{self.ann_file}: dropped {sum(dropped.values())} '
                f'degenerate annotation(s): {detail}')
        if repaired:
            detail = ', '.join(f'{n} {r}' for r, n in repaired.most_common())
            self._logger().warning(f'{self.ann_file}: repaired {detail}')

    def _check_categories(self, doc: dict, report: dict) -> None:
        """Annotations of categories outside ``classes``: raise, or drop and count."""
        classes = set(self.metainfo['classes'])
        names = {c['id']: c['name'] for c in doc['categories']}
        unknown: Counter = Counter()
        kept = []
        for ann in doc['annotations']:
            cid = ann.get('category_id')
            if not isinstance(cid, int) or isinstance(cid, bool) or names.get(cid) in classes:
                kept.append(ann)  # a bad category_id is dropped by the geometry checks
                continue
            unknown[repr(names[cid]) if cid in names
                    else f'category_id {cid} (not in the json categories)'] += 1
        report['unknown_categories'] = dict(unknown)
        if not unknown:
            return
        detail = ', '.join(f'{name}: {n}' for name, n in unknown.most_common())
        total = sum(unknown.values())
        if self.unknown_categories == 'drop':
            doc['annotations'] = kept
            self._logger().warning(
                f'{self.ann_file}: dropped {total} annotation(s) of categories not in '
                f'classes (unknown_categories=\'drop\'): {detail}')
            return
        raise SetupError(
            f"{self.ann_file}: {total} annotation(s) belong to categories that are not in "
            f"the data set's classes, instances per category: {detail}. CocoDataset would "
            'drop them silently and those objects would train as background. Add the '
            "categories to metainfo=dict(classes=(...)) (and the model's num_classes), or "
            "drop them on purpose with unknown_categories='drop' in the data set config "
            f'(a counted warning). classes: {_fmt_names(list(self.metainfo["classes"]))}')

    def filter_data(self) -> List[dict]:
        """CocoDataset's filtering; a training set left empty is an error.

        Raises:
            SetupError: Naming the file, the image count and the dropped annotations.
        """
        data_list = super().filter_data()
        if data_list or self.test_mode:
            return data_list
        filter_cfg = dict(self.filter_cfg or {})
        labelled = bool(filter_cfg.get('filter_empty_gt', False))
        report = self.check_report or {}
        dropped = Counter(report.get('dropped_annotations') or {})
        if self.unknown_categories == 'drop':
            for name, n in (report.get('unknown_categories') or {}).items():
                dropped[f'category {name} not in classes'] += n
        reasons = ', '.join(f'{n} {r}' for r, n in dropped.most_common()) or 'none'
        skipped = sum(len(report.get(k) or []) for k in
                      ('missing_files', 'corrupt_files', 'size_mismatches'))
        with_gt = sum(1 for d in self.data_list
                      if any(not i.get('ignore_flag', 0) for i in d.get('instances', [])))
        what = 'labelled set' if labelled else 'data set'
        hint = (f'{with_gt} image(s) kept an instance of the classes'
                + (f', {skipped} image file(s) were skipped' if skipped else '')
                + f'; filter_cfg={filter_cfg}. ')
        if labelled and with_gt == 0 and not dropped:
            hint += ('The json has no annotation of the classes; for unlabelled images use '
                     'filter_cfg=dict(filter_empty_gt=False). ')
        raise SetupError(
            f'{what} {self.ann_file} is empty after filtering ({len(self.data_list)} '
            f'images, {sum(dropped.values())} annotations dropped: {reasons}). {hint}'
            'Fix the annotations (boxes, masks, category names) or the filter settings.')

    # ------------------------------------------------------------------
    def _build_coco(self, doc: dict):
        """COCO index built from the validated dict (no second JSON read)."""
        coco = self.COCOAPI()
        coco.dataset = doc
        coco.createIndex()
        # mmdet's COCO wrapper aliases these in __init__, before the index
        # existed; re-point them at the fresh index.
        coco.img_ann_map = coco.imgToAnns
        coco.cat_img_map = coco.catToImgs
        return coco

    def _parse_coco(self, coco) -> List[dict]:
        """Turn the COCO index into data infos (same as CocoDataset)."""
        classes = list(self.metainfo['classes'])
        names = {c.get('name') for c in coco.dataset.get('categories', [])}
        missing = [c for c in classes if c not in names]
        if missing:
            # CocoDataset would skip them silently and shift every later class's label.
            raise ValueError(f'{self.ann_file}: classes {missing} of the dataset metainfo '
                             f'are not among the json categories {sorted(names)}')
        self.cat_ids = coco.get_cat_ids(cat_names=classes)
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}
        self.cat_img_map = copy.deepcopy(coco.cat_img_map)
        data_list = []
        for img_id in coco.get_img_ids():
            img_info = dict(coco.load_imgs([img_id])[0], img_id=img_id)
            anns = coco.load_anns(coco.get_ann_ids(img_ids=[img_id]))
            data_list.append(
                self.parse_data_info(
                    dict(raw_ann_info=anns, raw_img_info=img_info)))
        return data_list

    @staticmethod
    def _logger() -> MMLogger:
        return MMLogger.get_current_instance()


__all__ = ['CheckedCocoDataset', 'CocoFormatError', 'CorruptImageError',
           'ImageSizeMismatchError', 'check_annotation', 'decoded_size']
