"""Convert PASCAL VOC 2012 (and optionally SBD) instance masks to a COCO json with RLE masks.

VOC 2012 ships instance masks for its segmentation splits as two palette PNGs per image:
``SegmentationObject/<name>.png`` (0 background, 1..N instance index, 255 void/boundary) and
``SegmentationClass/<name>.png`` (0 background, 1..20 class, 255 void). Each instance gets
the majority class of its pixels; void pixels belong to no instance.

SBD (Hariharan et al., "benchmark_RELEASE/dataset") adds instance masks for 11,355 VOC 2011
images as ``inst/<name>.mat`` (``GTinst.Segmentation``: 0 background, 1..N instance index;
``GTinst.Categories``: the class of each instance), read with :mod:`scipy.io`.

Typical use (the "trainaug" protocol: VOC 2012 seg train + SBD train/val, minus VOC 2012 seg
val, 10,582 images; and the 1,449 VOC 2012 seg val images)::

    python tools/dataset_converters/voc_to_coco_instance.py \\
        --voc-root data/VOCdevkit/VOC2012 --split train \\
        --sbd-root data/SBD/benchmark_RELEASE/dataset --sbd-splits train val \\
        --out data/VOCdevkit/VOC2012/annotations/voc12_trainaug_instance.json
    python tools/dataset_converters/voc_to_coco_instance.py \\
        --voc-root data/VOCdevkit/VOC2012 --split val \\
        --out data/VOCdevkit/VOC2012/annotations/voc12_val_instance.json

Images are referenced as ``<name>.jpg`` relative to ``VOC2012/JPEGImages/`` (SBD's images are
VOC 2011 images, all present there). Image ids are ``int(YYYYNNNNNN)`` of the VOC names (e.g.
``2007_000032`` -> 2007000032), stable across splits and runs. Missing or unreadable files
stop the conversion with a message naming the file (``--on-error skip`` drops those images
and prints a summary instead).
"""
import argparse
import json
import os
import os.path as osp
import re
import sys
from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
               'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
               'sheep', 'sofa', 'train', 'tvmonitor')
VOID = 255
_NAME_RE = re.compile(r'^(\d{4})_(\d{6})$')


class VOCConversionError(RuntimeError):
    """A file needed for the conversion is missing, unreadable or inconsistent."""


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------
def read_split(path: str, what: str) -> List[str]:
    """Image names of a split file (one per line; blanks skipped), duplicates removed."""
    if not osp.isfile(path):
        raise VOCConversionError(f'{what} split file not found: {path}')
    with open(path, encoding='utf-8') as f:
        names = [line.strip().split()[0] for line in f if line.strip()]
    if not names:
        raise VOCConversionError(f'{what} split file is empty: {path}')
    return list(dict.fromkeys(names))


def read_index_png(path: str) -> np.ndarray:
    """Read a palette (or grayscale) PNG as its raw index values, ``(H, W)`` uint8."""
    if not osp.isfile(path):
        raise VOCConversionError(f'missing file: {path}')
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode not in ('P', 'L'):
                raise VOCConversionError(
                    f'{path}: expected a palette (mode "P") or grayscale index PNG as '
                    f'shipped with VOC, got mode "{mode}" (was it re-saved as RGB?)')
            arr = np.array(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise VOCConversionError(f'corrupt or unreadable PNG: {path} ({e})') from e
    return arr.astype(np.uint8)


def read_sbd_inst(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """SBD ``inst/<name>.mat`` -> (instance map ``(H, W)`` uint8, classes ``(N,)`` int)."""
    if not osp.isfile(path):
        raise VOCConversionError(f'missing file: {path}')
    try:
        from scipy.io import loadmat
    except ImportError as e:  # pragma: no cover - scipy ships with the test env
        raise VOCConversionError('reading SBD .mat files needs scipy (pip install scipy)') from e
    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
        gt = mat['GTinst']
        seg = np.asarray(gt.Segmentation)
        cats = np.atleast_1d(np.asarray(gt.Categories)).astype(np.int64).ravel()
    except (KeyError, AttributeError) as e:
        raise VOCConversionError(
            f'{path}: not an SBD instance file (needs GTinst.Segmentation and '
            f'GTinst.Categories): {e!r}') from e
    except Exception as e:  # scipy raises assorted errors on truncated / non-mat files
        raise VOCConversionError(f'corrupt or unreadable .mat file: {path} ({e})') from e
    if seg.ndim != 2:
        raise VOCConversionError(f'{path}: GTinst.Segmentation must be 2-D, got {seg.shape}')
    return seg.astype(np.uint8), cats


# --------------------------------------------------------------------------
# instances -> COCO
# --------------------------------------------------------------------------
def voc_instances(inst: np.ndarray, cls: np.ndarray, source: str) -> List[Tuple[int, np.ndarray]]:
    """``(class index 1..20, bool mask)`` per instance of VOC index maps."""
    if inst.shape != cls.shape:
        raise VOCConversionError(f'{source}: SegmentationObject {inst.shape} and '
                                 f'SegmentationClass {cls.shape} differ in size')
    out = []
    for k in np.unique(inst):
        if k in (0, VOID):
            continue
        mask = inst == k
        labels = cls[mask]
        labels = labels[(labels != 0) & (labels != VOID)]
        if labels.size == 0:
            continue  # instance pixels all void/background in the class map: no class
        label = int(Counter(labels.tolist()).most_common(1)[0][0])
        if not 1 <= label <= len(VOC_CLASSES):
            raise VOCConversionError(f'{source}: class index {label} out of range 1..20')
        out.append((label, mask))
    return out


def sbd_instances(inst: np.ndarray, cats: np.ndarray, source: str) -> List[Tuple[int, np.ndarray]]:
    """``(class index 1..20, bool mask)`` per instance of an SBD instance map."""
    out = []
    for k in np.unique(inst):
        if k in (0, VOID):
            continue
        if k > len(cats):
            raise VOCConversionError(f'{source}: instance {k} has no entry in '
                                     f'GTinst.Categories (length {len(cats)})')
        label = int(cats[k - 1])
        if not 1 <= label <= len(VOC_CLASSES):
            raise VOCConversionError(f'{source}: class index {label} out of range 1..20')
        out.append((label, inst == k))
    return out


def encode_mask(mask: np.ndarray) -> Tuple[dict, float, List[float]]:
    """COCO RLE (``counts`` as str), area and xywh box of a bool mask."""
    from mmssis.structures import encode_rle
    return encode_rle(mask)


def image_ids(names: Sequence[str]) -> Dict[str, int]:
    """``YYYY_NNNNNN`` -> ``int(YYYYNNNNNN)`` when every name has that form, else 1..N."""
    if all(_NAME_RE.match(n) for n in names):
        return {n: int(n.replace('_', '')) for n in names}
    return {n: i + 1 for i, n in enumerate(names)}


def _progress(items: Sequence, enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return items
    try:
        from tqdm import tqdm
        return tqdm(items, desc=desc, unit='img')
    except ImportError:  # pragma: no cover
        from mmengine.utils import track_iter_progress
        return track_iter_progress(list(items))


# --------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------
def collect_names(voc_root: str, split: Optional[str], sbd_root: Optional[str],
                  sbd_splits: Sequence[str], exclude_voc_splits: Sequence[str]
                  ) -> List[Tuple[str, str]]:
    """``(name, 'voc' | 'sbd')`` in output order: VOC split first, then new SBD names."""
    seg_sets = osp.join(voc_root, 'ImageSets', 'Segmentation')
    jobs: List[Tuple[str, str]] = []
    if split:
        jobs += [(n, 'voc') for n in read_split(osp.join(seg_sets, f'{split}.txt'),
                                                f'VOC "{split}"')]
    if sbd_root and sbd_splits:
        taken = {n for n, _ in jobs}
        excluded = set()
        for ex in exclude_voc_splits:
            excluded.update(read_split(osp.join(seg_sets, f'{ex}.txt'), f'VOC "{ex}"'))
        for s in sbd_splits:
            for n in read_split(osp.join(sbd_root, f'{s}.txt'), f'SBD "{s}"'):
                if n not in taken and n not in excluded:
                    taken.add(n)
                    jobs.append((n, 'sbd'))
    if not jobs:
        raise VOCConversionError('nothing to convert: give --split and/or --sbd-root with '
                                 '--sbd-splits')
    return jobs


def _load_one(name: str, source: str, voc_root: str, sbd_root: Optional[str],
              check_images: bool) -> Tuple[Tuple[int, int], List[Tuple[int, np.ndarray]]]:
    if source == 'voc':
        inst = read_index_png(osp.join(voc_root, 'SegmentationObject', f'{name}.png'))
        cls = read_index_png(osp.join(voc_root, 'SegmentationClass', f'{name}.png'))
        instances = voc_instances(inst, cls, f'VOC image {name}')
    else:
        inst, cats = read_sbd_inst(osp.join(sbd_root, 'inst', f'{name}.mat'))
        instances = sbd_instances(inst, cats, f'SBD image {name}')
    h, w = inst.shape
    img_path = osp.join(voc_root, 'JPEGImages', f'{name}.jpg')
    if check_images:
        if not osp.isfile(img_path):
            raise VOCConversionError(f'missing file: {img_path}')
        try:
            with Image.open(img_path) as img:
                img.load()
                size = img.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise VOCConversionError(f'corrupt or unreadable image: {img_path} ({e})') from e
        if size != (w, h):
            raise VOCConversionError(f'{img_path} is {size[0]}x{size[1]} but its masks are '
                                     f'{w}x{h}')
    return (h, w), instances


def convert(voc_root: str,
            out_file: str,
            split: Optional[str] = 'train',
            sbd_root: Optional[str] = None,
            sbd_splits: Sequence[str] = ('train', 'val'),
            exclude_voc_splits: Sequence[str] = ('val', ),
            on_error: str = 'raise',
            check_images: bool = False,
            show_progress: bool = True) -> dict:
    """Write a COCO instance json for a VOC split (plus SBD images, if given).

    Args:
        voc_root: ``VOCdevkit/VOC2012``.
        out_file: Output json path (parent folders are created).
        split: VOC segmentation split (``ImageSets/Segmentation/<split>.txt``), or None.
        sbd_root: SBD ``benchmark_RELEASE/dataset`` folder, or None for VOC only.
        sbd_splits: SBD split files (``<sbd_root>/<split>.txt``) to add.
        exclude_voc_splits: VOC segmentation splits whose images are never taken from SBD
            (default ``val``, so the trainaug set does not overlap VOC 2012 seg val).
        on_error: ``'raise'`` (stop at the first bad file) or ``'skip'`` (drop the image).
        check_images: Also open every JPEG and compare its size with the masks.
        show_progress: Show a progress bar.

    Returns:
        Statistics: ``images``, ``annotations``, ``from_voc``, ``from_sbd``, ``skipped``
        (list of ``(name, reason)``).

    Raises:
        VOCConversionError: A missing/corrupt file (``on_error='raise'``) or bad arguments.
    """
    if on_error not in ('raise', 'skip'):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not osp.isdir(voc_root):
        raise VOCConversionError(f'VOC root not found: {voc_root} (expected '
                                 'VOCdevkit/VOC2012 with JPEGImages/, SegmentationObject/, '
                                 'SegmentationClass/, ImageSets/Segmentation/)')
    if sbd_root is not None and not osp.isdir(sbd_root):
        raise VOCConversionError(f'SBD root not found: {sbd_root} (expected '
                                 'benchmark_RELEASE/dataset with inst/, train.txt, val.txt)')
    jobs = collect_names(voc_root, split, sbd_root, sbd_splits if sbd_root else (),
                         exclude_voc_splits)
    ids = image_ids([n for n, _ in jobs])
    images, annotations, skipped = [], [], []
    counts = Counter()
    for name, source in _progress(jobs, show_progress, 'converting'):
        try:
            (h, w), instances = _load_one(name, source, voc_root, sbd_root, check_images)
        except VOCConversionError as e:
            if on_error == 'raise':
                raise VOCConversionError(
                    f'{e}\n  (image "{name}" from {source.upper()}; fix the file or rerun with '
                    f'--on-error skip to drop such images)') from e
            skipped.append((name, str(e)))
            continue
        counts[source] += 1
        img_id = ids[name]
        images.append(dict(id=img_id, file_name=f'{name}.jpg', height=int(h), width=int(w)))
        for label, mask in instances:
            rle, area, bbox = encode_mask(mask)
            annotations.append(
                dict(id=len(annotations) + 1, image_id=img_id, category_id=label,
                     segmentation=rle, area=area, bbox=bbox, iscrowd=0))
    if not images:
        raise VOCConversionError('no image could be converted; first problems: '
                                 + '; '.join(r for _, r in skipped[:3]))
    doc = dict(
        info=dict(description='PASCAL VOC 2012 instance segmentation'
                  + (' + SBD' if counts['sbd'] else ''),
                  version='1.0'),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=i + 1, name=n, supercategory='none')
                    for i, n in enumerate(VOC_CLASSES)])
    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    tmp = out_file + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(doc, f)
    os.replace(tmp, out_file)
    return dict(images=len(images), annotations=len(annotations), from_voc=counts['voc'],
                from_sbd=counts['sbd'], skipped=skipped)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert PASCAL VOC 2012 (+ SBD) instance masks to COCO json (RLE).')
    parser.add_argument('--voc-root', required=True, help='VOCdevkit/VOC2012 folder')
    parser.add_argument('--split', default='train',
                        help='VOC segmentation split (ImageSets/Segmentation/<split>.txt); '
                        '"none" for SBD images only')
    parser.add_argument('--sbd-root', default=None,
                        help='SBD benchmark_RELEASE/dataset folder (adds its images)')
    parser.add_argument('--sbd-splits', nargs='+', default=['train', 'val'],
                        help='SBD split files to add (with --sbd-root)')
    parser.add_argument('--exclude-voc-splits', nargs='*', default=['val'],
                        help='VOC seg splits never taken from SBD (default: val)')
    parser.add_argument('--out', required=True, help='output json file')
    parser.add_argument('--on-error', choices=['raise', 'skip'], default='raise',
                        help='stop at the first missing/corrupt file, or skip the image')
    parser.add_argument('--check-images', action='store_true',
                        help='also decode every JPEG and compare its size with the masks')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    split = None if str(args.split).lower() == 'none' else args.split
    try:
        stats = convert(args.voc_root, args.out, split=split, sbd_root=args.sbd_root,
                        sbd_splits=args.sbd_splits, exclude_voc_splits=args.exclude_voc_splits,
                        on_error=args.on_error, check_images=args.check_images,
                        show_progress=not args.no_progress)
    except VOCConversionError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'wrote {args.out}: {stats["images"]} images ({stats["from_voc"]} VOC, '
          f'{stats["from_sbd"]} SBD), {stats["annotations"]} instances')
    if stats['skipped']:
        print(f'skipped {len(stats["skipped"])} image(s):', file=sys.stderr)
        for name, reason in stats['skipped'][:10]:
            print(f'  {name}: {reason}', file=sys.stderr)
        if len(stats['skipped']) > 10:
            print(f'  ... and {len(stats["skipped"]) - 10} more', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
