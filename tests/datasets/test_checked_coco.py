"""Tests of the validating COCO dataset."""
import json
import shutil

import numpy as np
import pytest
from mmdet.datasets.transforms import LoadAnnotations
from mmcv.transforms import LoadImageFromFile

from mmssis.datasets import CheckedCocoDataset, CocoFormatError, CorruptImageError
from mmssis.demo import DEMO_CLASSES, demo_metainfo
from mmssis.datasets.checked_coco import check_annotation
from mmssis.registry import DATASETS


def _dataset(root, ann_file, **kwargs):
    kwargs.setdefault('metainfo', demo_metainfo())
    kwargs.setdefault('pipeline', [])
    return CheckedCocoDataset(data_root=str(root), ann_file=ann_file,
                              data_prefix=dict(img='images/'), **kwargs)


@pytest.fixture
def demo_copy(tiny_demo, tmp_path):
    """A writable copy of the tiny demo set."""
    root = tmp_path / 'demo'
    shutil.copytree(tiny_demo.root, root)
    return root


def _read(path):
    with open(path) as f:
        return json.load(f)


def _write(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f)


def test_registered():
    assert DATASETS.get('CheckedCocoDataset') is CheckedCocoDataset


def test_loads_demo_and_pipeline(tiny_demo):
    coco = _read(tiny_demo.train_ann)
    ds = _dataset(tiny_demo.root, 'annotations/instances_train.json',
                  check_files=True, verify_images=True,
                  pipeline=[LoadImageFromFile(),
                            LoadAnnotations(with_bbox=True, with_mask=True)])
    assert len(ds) == len(coco['images'])
    assert sum(len(ds.get_data_info(i)['instances'])
               for i in range(len(ds))) == len(coco['annotations'])
    assert ds.check_report['dropped_annotations'] == {}
    sample = ds[0]
    assert sample['img'].shape == (128, 128, 3)
    assert len(sample['gt_masks']) == len(sample['gt_bboxes']) > 0
    assert sample['gt_masks'].masks.any(axis=(1, 2)).all()


def test_loads_semi_splits(tiny_demo):
    lab = _dataset(tiny_demo.root, 'annotations/instances_train.1@8.json',
                   filter_cfg=dict(filter_empty_gt=True))
    unl = _dataset(tiny_demo.root,
                   'annotations/instances_train.1@8-unlabeled.json',
                   filter_cfg=dict(filter_empty_gt=False))
    assert len(lab) >= 1 and len(unl) >= 10 * len(lab)
    assert all(unl.get_data_info(i)['instances'] == []
               for i in range(len(unl)))


def test_unlabeled_without_annotations_key(demo_copy, log_records):
    coco = _read(demo_copy / 'annotations' / 'instances_train.json')
    del coco['annotations']
    _write(demo_copy / 'annotations' / 'noanns.json', coco)
    ds = _dataset(demo_copy, 'annotations/noanns.json', filter_cfg=None)
    assert len(ds) == len(coco['images'])
    assert any("no 'annotations' key" in m for m in log_records)
    # Documented: filter_empty_gt=True empties an unlabelled set, which is an error
    # naming the file and the fix (mmengine would fail on the empty list).
    with pytest.raises(ValueError, match='noanns.json is empty after filtering.*'
                       r'filter_cfg=dict\(filter_empty_gt=False\)'):
        _dataset(demo_copy, 'annotations/noanns.json',
                 filter_cfg=dict(filter_empty_gt=True), serialize_data=False)


def test_missing_image_file_raises(demo_copy):
    missing = demo_copy / 'images' / 'train' / '000003.png'
    missing.unlink()
    ann = 'annotations/instances_train.json'
    with pytest.raises(FileNotFoundError) as err:
        _dataset(demo_copy, ann, check_files=True)
    assert '1 image file(s)' in str(err.value)
    assert '000003.png' in str(err.value)
    # Without the check the (lazy) failure is left to the loader.
    assert len(_dataset(demo_copy, ann)) == 12


def test_missing_image_file_skip(demo_copy, log_records):
    for name in ('000001.png', '000004.png'):
        (demo_copy / 'images' / 'train' / name).unlink()
    ds = _dataset(demo_copy, 'annotations/instances_train.json',
                  check_files=True, missing_files='skip')
    assert len(ds) == 10
    paths = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    assert not any(p.endswith(('000001.png', '000004.png')) for p in paths)
    assert len(ds.check_report['missing_files']) == 2
    assert any('skipping 2 missing' in m for m in log_records)


def test_corrupt_image(demo_copy):
    path = demo_copy / 'images' / 'train' / '000002.png'
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])  # truncated PNG
    ann = 'annotations/instances_train.json'
    with pytest.raises(CorruptImageError, match='000002.png'):
        _dataset(demo_copy, ann, verify_images=True)
    ds = _dataset(demo_copy, ann, verify_images=True, missing_files='skip')
    assert len(ds) == 11


def test_bad_missing_files_mode(tiny_demo):
    with pytest.raises(ValueError, match='missing_files'):
        _dataset(tiny_demo.root, 'annotations/instances_val.json',
                 missing_files='ignore')


def _degenerate_coco():
    """One image with 3 good and 6 degenerate annotations."""
    good_poly = [[2, 2, 20, 2, 20, 20, 2, 20]]

    def ann(i, **kw):
        base = dict(id=i, image_id=1, category_id=1, bbox=[2, 2, 18, 18],
                    area=324, iscrowd=0, segmentation=good_poly)
        base.update(kw)
        return base

    rle = dict(size=[32, 32], counts='PP1')  # empty mask of a 32x32 image
    anns = [
        ann(1),  # good
        ann(2, segmentation=[[1, 1, 5, 5]]),  # polygon with 2 points
        ann(3, segmentation=[[1, 1, 5, 5, 9, 9]]),  # collinear: zero area
        ann(4, bbox=[3, 3, 1, 10]),  # w <= 1
        ann(5, bbox=[40, 40, 5, 5]),  # outside the 32x32 image
        ann(6, segmentation=dict(size=[16, 16], counts='P8')),  # mis-sized
        ann(7, segmentation=rle),  # zero-area RLE
        ann(8, segmentation=good_poly + [[1, 1]]),  # repaired: part removed
        ann(9, area=0),  # repaired: area recomputed
    ]
    return dict(images=[dict(id=1, file_name='a.png', height=32, width=32)],
                annotations=anns,
                categories=[dict(id=i + 1, name=n) for i, n in enumerate(DEMO_CLASSES)])


def test_degenerate_annotations_dropped(tmp_path, log_records):
    _write(tmp_path / 'deg.json', _degenerate_coco())
    ds = CheckedCocoDataset(data_root=str(tmp_path), ann_file='deg.json',
                            metainfo=demo_metainfo(), pipeline=[],
                            data_prefix=dict(img=''))
    instances = ds.get_data_info(0)['instances']
    assert len(instances) == 3
    assert ds.check_report['dropped_annotations'] == {
        'polygon < 3 points': 1, 'zero-area mask': 2, 'box w/h <= 1': 1,
        'box outside image': 1, 'malformed/mis-sized RLE': 1}
    assert ds.check_report['repaired_annotations'] == {
        'invalid polygon part removed': 1, 'area recomputed': 1}
    assert instances[1]['mask'] == [[2, 2, 20, 2, 20, 20, 2, 20]]
    assert any('dropped 6 degenerate annotation(s)' in m
               for m in log_records)


def test_check_annotation_requires_mask():
    ann = dict(category_id=1, bbox=[0, 0, 5, 5], area=25)
    assert check_annotation(dict(ann), 8, 8, require_mask=True)[0] == 'no mask'
    assert check_annotation(dict(ann), 8, 8, require_mask=False)[0] is None


@pytest.mark.parametrize('content, expected', [
    ('{"images": [], "annotations": [', 'line 1 column'),
    (json.dumps({'annotations': [], 'categories': []}), "'images'"),
    (json.dumps({'images': {}, 'categories': []}), "'images' must be a list"),
    (json.dumps({'images': [], 'annotations': []}), "'categories'"),
    (json.dumps({'images': [dict(id=1, file_name='a.png', height=4,
                                 width=4)],
                 'annotations': [dict(id=1, image_id=2)],
                 'categories': []}), 'unknown image_id'),
    (json.dumps({'images': [dict(id=1, file_name='a.png', height=4,
                                 width=4)],
                 'annotations': [dict(id=1, image_id=1, category_id=1,
                                      bbox=[0, 0, 2, 2]),
                                 dict(id=1, image_id=1, category_id=1,
                                      bbox=[0, 0, 2, 2])],
                 'categories': []}), 'duplicate annotation id'),
])
def test_malformed_annotation_file(tmp_path, content, expected):
    (tmp_path / 'my_anns.json').write_text(content)
    with pytest.raises(CocoFormatError) as err:
        CheckedCocoDataset(data_root=str(tmp_path), ann_file='my_anns.json',
                           pipeline=[])
    assert 'my_anns.json' in str(err.value)
    assert expected in str(err.value)


def test_lazy_init_defers_validation(tmp_path):
    (tmp_path / 'x.json').write_text('{')
    ds = CheckedCocoDataset(data_root=str(tmp_path), ann_file='x.json',
                            pipeline=[], lazy_init=True)
    with pytest.raises(CocoFormatError):
        ds.full_init()


def test_ids_assigned_when_missing(tmp_path):
    coco = _degenerate_coco()
    coco['annotations'] = coco['annotations'][:1]
    del coco['annotations'][0]['id']
    _write(tmp_path / 'noid.json', coco)
    ds = CheckedCocoDataset(data_root=str(tmp_path), ann_file='noid.json',
                            metainfo=demo_metainfo(), pipeline=[],
                            data_prefix=dict(img=''))
    assert len(ds.get_data_info(0)['instances']) == 1
    assert np.isfinite(ds.get_data_info(0)['instances'][0]['bbox']).all()


# ----------------------------------------------------------------------- image sizes
def _resize_file(path, size=(120, 100)):
    import cv2
    img = cv2.imread(str(path))
    cv2.imwrite(str(path), cv2.resize(img, size))  # (w, h) = 120 x 100


def test_size_mismatch_is_reported_before_training(demo_copy, log_records):
    from mmssis.datasets import ImageSizeMismatchError
    _resize_file(demo_copy / 'images' / 'train' / '000005.png')
    ann = 'annotations/instances_train.json'
    with pytest.raises(ImageSizeMismatchError) as err:
        _dataset(demo_copy, ann, check_sizes=True)
    msg = str(err.value)
    assert '000005.png' in msg and 'file 100x120' in msg and 'json 128x128' in msg
    ds = _dataset(demo_copy, ann, check_sizes=True, missing_files='skip')
    assert len(ds) == 11 and len(ds.check_report['size_mismatches']) == 1
    assert any('1 mis-sized' in m for m in log_records)


def test_size_mismatch_inside_a_running_job_names_the_file(demo_copy):
    """Without the check, loading the image is where it stops: an error naming the file,
    not mmdet's reshape error in BitmapMasks."""
    from mmssis.datasets import ImageSizeMismatchError
    _resize_file(demo_copy / 'images' / 'train' / '000000.png')
    ds = _dataset(demo_copy, 'annotations/instances_train.json',
                  pipeline=[LoadImageFromFile(), LoadAnnotations(with_mask=True)])
    idx = next(i for i in range(len(ds))
               if ds.get_data_info(i)['img_path'].endswith('000000.png'))
    with pytest.raises(ImageSizeMismatchError, match=r'000000\.png.*100x120.*128x128'):
        ds[idx]
    other = (idx + 1) % len(ds)
    assert ds[other]['gt_masks'].masks.shape[1:] == (128, 128)  # the others load


def test_exif_rotated_photo_is_checked_at_its_decoded_size(tmp_path):
    """A phone photo stored 60 x 40 with EXIF orientation 6 decodes (mmcv, cv2) as 40 x 60:
    a json giving the decoded size passes, one giving the stored size is reported."""
    from PIL import Image
    from mmssis.datasets import ImageSizeMismatchError
    (tmp_path / 'images').mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(
        str(tmp_path / 'images' / 'photo.jpg'), exif=exif)
    for (h, w), ok in (((60, 40), True), ((40, 60), False)):
        doc = dict(images=[dict(id=1, file_name='photo.jpg', height=h, width=w)],
                   annotations=[dict(id=1, image_id=1, category_id=1, iscrowd=0,
                                     bbox=[2, 2, 20, 20], area=400,
                                     segmentation=[[2, 2, 22, 2, 22, 22, 2, 22]])],
                   categories=[dict(id=1, name=DEMO_CLASSES[0])])
        _write(tmp_path / 'ann.json', doc)
        meta = dict(classes=(DEMO_CLASSES[0], ))
        if ok:
            assert len(_dataset(tmp_path, 'ann.json', check_sizes=True, metainfo=meta)) == 1
        else:
            with pytest.raises(ImageSizeMismatchError, match='photo.jpg'):
                _dataset(tmp_path, 'ann.json', check_sizes=True, metainfo=meta)
