"""Tests of the embedded demo data generator."""
import filecmp
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mmssis.datasets.coco_split import num_labeled
from mmssis.demo.data import (DEMO_CLASSES, demo_metainfo,
                                       generate_demo_dataset, load_photo_pool,
                                       render_demo_image)


def _load(path):
    with open(path) as f:
        return json.load(f)


def _all_files(root):
    out = []
    for dirpath, _, names in os.walk(root):
        out += [osp.relpath(osp.join(dirpath, n), root) for n in names]
    return sorted(out)


def _instances(info, split='train'):
    """Yield (annotation, bool mask, grey image) of a split."""
    ann_file = info.train_ann if split == 'train' else info.val_ann
    coco = _load(ann_file)
    images = {im['id']: im for im in coco['images']}
    for ann in coco['annotations']:
        im = images[ann['image_id']]
        grey = cv2.imread(osp.join(info.root, 'images', im['file_name']),
                          cv2.IMREAD_GRAYSCALE)
        yield ann, mask_utils.decode(ann['segmentation']).astype(bool), grey


def test_deterministic_bytes(tiny_demo, tiny_params, tmp_path):
    other = generate_demo_dataset(str(tmp_path / 'again'), **tiny_params)
    files = _all_files(tiny_demo.root)
    assert files == _all_files(other.root)
    assert len([f for f in files if f.endswith('.png')]) == 16
    match, mismatch, errors = filecmp.cmpfiles(
        tiny_demo.root, other.root, files, shallow=False)
    assert not mismatch and not errors


def test_other_seed_differs(tiny_demo, tiny_params, tmp_path):
    other = generate_demo_dataset(str(tmp_path / 's1'),
                                  **{**tiny_params, 'seed': 1})
    a = osp.join(tiny_demo.root, 'images', 'train', '000000.png')
    b = osp.join(other.root, 'images', 'train', '000000.png')
    assert not filecmp.cmp(a, b, shallow=False)


def test_layout_and_coco_fields(tiny_demo):
    assert osp.basename(tiny_demo.labeled_ann) == 'instances_train.1@8.json'
    assert osp.basename(
        tiny_demo.unlabeled_ann) == 'instances_train.1@8-unlabeled.json'
    train, val = _load(tiny_demo.train_ann), _load(tiny_demo.val_ann)
    assert len(train['images']) == 12 and len(val['images']) == 4
    assert [c['name'] for c in train['categories']] == list(DEMO_CLASSES)
    assert [c['id'] for c in train['categories']] == [1, 2, 3, 4]
    for im in train['images']:
        assert im['file_name'].startswith('train/')
        assert (im['height'], im['width']) == (128, 128)
        assert osp.isfile(osp.join(tiny_demo.root, 'images',
                                   im['file_name']))
    ann = train['annotations'][0]
    assert set(ann) >= {'id', 'image_id', 'category_id', 'bbox', 'area',
                        'iscrowd', 'segmentation'}
    assert ann['iscrowd'] == 0
    assert isinstance(ann['segmentation']['counts'], str)
    assert ann['segmentation']['size'] == [128, 128]
    assert len({a['id'] for a in train['annotations']}) == len(
        train['annotations'])


def test_semi_split_ratio(tiny_demo):
    full = _load(tiny_demo.train_ann)
    lab, unl = _load(tiny_demo.labeled_ann), _load(tiny_demo.unlabeled_ann)
    lab_ids = {im['id'] for im in lab['images']}
    unl_ids = {im['id'] for im in unl['images']}
    assert not lab_ids & unl_ids
    assert lab_ids | unl_ids == {im['id'] for im in full['images']}
    assert len(unl_ids) >= 10 * len(lab_ids)
    assert unl['annotations'] == [] and unl['categories'] == full[
        'categories']
    assert lab['annotations'] == [
        a for a in full['annotations'] if a['image_id'] in lab_ids]
    # The default full-size split: 24 labelled, 276 unlabelled images.
    assert num_labeled(300, 8) == 24


def test_at_least_three_classes(tiny_demo):
    labels = {a['category_id'] for a in _load(tiny_demo.train_ann)[
        'annotations']}
    assert len(labels) >= 3


def test_masks_match_boxes_and_areas(tiny_demo):
    n = 0
    for ann, mask, _ in _instances(tiny_demo):
        ys, xs = np.nonzero(mask)
        box = [xs.min(), ys.min(), xs.max() - xs.min() + 1,
               ys.max() - ys.min() + 1]
        assert ann['bbox'] == [float(v) for v in box]
        assert ann['area'] == int(mask.sum()) >= 40
        n += 1
    assert n >= 12 * 2


def test_masks_disjoint_and_occlusion_present(tiny_demo):
    per_image = {}
    for ann, mask, _ in _instances(tiny_demo):
        per_image.setdefault(ann['image_id'], []).append(mask)
    touching = 0
    for masks in per_image.values():
        assert 1 <= len(masks) <= 6
        stack = np.stack(masks).astype(np.int32)
        assert stack.sum(0).max() == 1, 'instance masks overlap'
        for i, a in enumerate(masks):
            grown = cv2.dilate(a.astype(np.uint8), np.ones((3, 3), np.uint8))
            touching += sum(bool(grown[b].any()) for b in masks[i + 1:])
    # Masks only touch when one object occludes another.
    assert touching >= 1


def test_render_occlusion_removes_covered_pixels():
    photos, _ = load_photo_pool()
    found = False
    for i in range(30):
        img, instances = render_demo_image(np.random.default_rng(i), photos,
                                           image_size=128)
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
        masks = [m for _, m in instances]
        for a in range(len(masks)):
            for b in range(a + 1, len(masks)):
                grown = cv2.dilate(masks[a].astype(np.uint8),
                                   np.ones((3, 3), np.uint8))
                found |= bool(grown[masks[b]].any())
    assert found


def test_textures_not_flat(tiny_demo):
    stds = [float(grey[mask].std()) for _, mask, grey in _instances(tiny_demo)]
    assert min(stds) > 4
    assert np.median(stds) > 15


def test_skip_and_force(tmp_path):
    root = str(tmp_path / 'd')
    params = dict(num_train=3, num_val=1, image_size=64, object_size=(24, 90))
    first = generate_demo_dataset(root, **params)
    assert first.regenerated
    png = osp.join(root, 'images', 'train', '000000.png')
    stamp = os.stat(png).st_mtime_ns
    again = generate_demo_dataset(root, **params)
    assert not again.regenerated and os.stat(png).st_mtime_ns == stamp
    assert generate_demo_dataset(root, force=True, **params).regenerated
    # Fewer images: parameters change, stale PNGs are removed.
    smaller = generate_demo_dataset(root, **{**params, 'num_train': 2})
    assert smaller.regenerated
    assert sorted(os.listdir(osp.join(root, 'images', 'train'))) == [
        '000000.png', '000001.png']


def test_incomplete_output_regenerates(tmp_path):
    root = str(tmp_path / 'd')
    params = dict(num_train=3, num_val=1, image_size=64, object_size=(24, 90))
    generate_demo_dataset(root, **params)
    os.remove(osp.join(root, 'images', 'val', '000000.png'))
    assert generate_demo_dataset(root, **params).regenerated


def test_bad_object_counts(tmp_path):
    with pytest.raises(ValueError):
        generate_demo_dataset(str(tmp_path), min_objects=3, max_objects=2)


def test_demo_metainfo():
    meta = demo_metainfo()
    assert meta['classes'] == DEMO_CLASSES and len(DEMO_CLASSES) >= 3
    assert len(meta['palette']) == len(DEMO_CLASSES)


def test_checksum_recorded_checked_and_tampering_regenerates(tmp_path, monkeypatch):
    import json

    from mmssis.demo import data as demo_data
    params = dict(seed=0, num_train=6, num_val=2, image_size=64)
    root = str(tmp_path / 'd')
    demo_data.generate_demo_dataset(root, **params)
    with open(f'{root}/meta.json') as f:
        first = json.load(f)['sha256']
    assert len(first) == 64
    # Same arguments in another directory: the same bytes.
    demo_data.generate_demo_dataset(str(tmp_path / 'e'), **params)
    with open(f'{tmp_path}/e/meta.json') as f:
        assert json.load(f)['sha256'] == first
    # A file changed after generation is detected and the data regenerated.
    with open(f'{root}/images/train/000000.png', 'ab') as f:
        f.write(b'x')
    assert demo_data.generate_demo_dataset(root, **params).regenerated
    # Data that differs from the reference of its arguments is an error naming both sums.
    monkeypatch.setattr(demo_data, 'REFERENCE_SHA256', '0' * 64)
    monkeypatch.setattr(demo_data, '_is_default', lambda p: True)
    with pytest.raises(demo_data.DemoDataMismatchError, match=first):
        demo_data.generate_demo_dataset(root, **params)
    demo_data.generate_demo_dataset(root, check_reference=False, **params)


def test_unlabelled_gt_is_the_hidden_truth_of_the_unlabelled_split(tiny_demo, tmp_path):
    from mmssis.demo.data import write_unlabelled_gt
    out = write_unlabelled_gt(tiny_demo.root, str(tmp_path / 'hidden.json'))
    hidden = json.load(open(out))
    full = json.load(open(tiny_demo.train_ann))
    unlabelled = json.load(open(tiny_demo.unlabeled_ann))
    assert unlabelled['annotations'] == []  # what training reads
    ids = {im['id'] for im in unlabelled['images']}
    assert {im['id'] for im in hidden['images']} == ids
    assert hidden['annotations'] == [a for a in full['annotations'] if a['image_id'] in ids]
    assert hidden['annotations'] and hidden['categories'] == full['categories']
    import shutil
    copy = str(tmp_path / 'copy')
    shutil.copytree(osp.join(tiny_demo.root, 'annotations'), osp.join(copy, 'annotations'))
    os.remove(osp.join(copy, 'annotations', osp.basename(tiny_demo.unlabeled_ann)))
    with pytest.raises(FileNotFoundError, match='unlabeled'):
        write_unlabelled_gt(copy, str(tmp_path / 'x.json'))
