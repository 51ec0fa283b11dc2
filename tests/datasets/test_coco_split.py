"""Tests of the COCO labelled/unlabelled split tool."""
import json
import os
import os.path as osp

import pytest

from mmssis.datasets.coco_split import (CocoFormatError, frame_key,
                                        load_coco_json, num_labeled,
                                        split_coco)
from mmssis.testing.tools import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CITYSCAPES_LIST = osp.join(REPO, '..', 'shared', 'data', 'cityscapes_splits',
                           'perc_5.txt')


def _coco(file_names, anns_per_image=2):
    images = [dict(id=i + 10, file_name=n, height=32, width=32)
              for i, n in enumerate(file_names)]
    annotations = [
        dict(id=len(file_names) * k + i + 1, image_id=im['id'],
             category_id=1, bbox=[1, 1, 5, 5], area=25, iscrowd=0,
             segmentation=[[1, 1, 6, 1, 6, 6, 1, 6]])
        for k in range(anns_per_image) for i, im in enumerate(images)
    ]
    return dict(info=dict(description='test'), licenses=[], images=images,
                annotations=annotations,
                categories=[dict(id=1, name='thing')])


def _write(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f)
    return str(path)


def _read(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture
def ann_file(tmp_path):
    names = [f'train/{i:06d}.png' for i in range(50)]
    return _write(tmp_path / 'instances_train.json', _coco(names))


def test_names_and_counts(ann_file, tmp_path):
    lab, unl = split_coco(ann_file, str(tmp_path / 'out'), percent=10,
                          seed=3, show_progress=False)
    assert osp.basename(lab) == 'instances_train.3@10.json'
    assert osp.basename(unl) == 'instances_train.3@10-unlabeled.json'
    assert len(_read(lab)['images']) == 5
    assert len(_read(unl)['images']) == 45


def test_partition_is_disjoint_and_complete(ann_file, tmp_path):
    full = _read(ann_file)
    lab_path, unl_path = split_coco(ann_file, str(tmp_path), percent=20,
                                    seed=1, show_progress=False)
    lab, unl = _read(lab_path), _read(unl_path)
    lab_ids = [im['id'] for im in lab['images']]
    unl_ids = [im['id'] for im in unl['images']]
    assert not set(lab_ids) & set(unl_ids)
    assert sorted(lab_ids + unl_ids) == [im['id'] for im in full['images']]
    # Input order is kept within each part.
    assert lab_ids == sorted(lab_ids) and unl_ids == sorted(unl_ids)
    assert lab['annotations'] == [a for a in full['annotations']
                                  if a['image_id'] in set(lab_ids)]
    assert unl['annotations'] == []
    for part in (lab, unl):
        assert part['categories'] == full['categories']
        assert part['info'] == full['info']


def test_seeded_reproducibility(ann_file, tmp_path):
    paths = [split_coco(ann_file, str(tmp_path / d), percent=10, seed=s,
                        show_progress=False)[0]
             for d, s in (('a', 1), ('b', 1), ('c', 2))]
    with open(paths[0], 'rb') as a, open(paths[1], 'rb') as b:
        assert a.read() == b.read()
    ids = [{im['id'] for im in _read(p)['images']} for p in paths]
    assert ids[0] != ids[2]


def test_num_labeled_rounding():
    assert num_labeled(300, 8) == 24
    assert num_labeled(12, 8) == 1  # at least one labelled image
    assert num_labeled(2, 99) == 1  # at least one unlabelled image
    assert num_labeled(100, 7) == 7


@pytest.mark.parametrize('percent', [0, 100, -5, 150])
def test_percent_range(ann_file, tmp_path, percent):
    with pytest.raises(ValueError, match='percent'):
        split_coco(ann_file, str(tmp_path / 'out'), percent=percent)
    assert not osp.exists(tmp_path / 'out')


def test_frame_key():
    assert frame_key('bremen_000041_000019_gtFine_instanceIds.png') == \
        'bremen_000041_000019'
    assert frame_key('train/bremen/bremen_000041_000019_leftImg8bit.png') \
        == 'bremen_000041_000019'
    assert frame_key('train/000007.png') == '000007'


def test_labeled_list_cityscapes_names(tmp_path):
    cities = [f'{c}_{i:06d}_000019' for c in ('ulm', 'bremen')
              for i in range(10)]
    ann = _write(tmp_path / 'cs_train.json', _coco(
        [f'train/{c.split("_")[0]}/{c}_leftImg8bit.png' for c in cities]))
    lst = tmp_path / 'perc_x.txt'
    lst.write_text('# fixed split\nulm_000003_000019_gtFine_instanceIds.png\n'
                   '\nbremen_000007_000019_gtFine_instanceIds.png\n')
    lab, unl = split_coco(ann, str(tmp_path / 'out'), labeled_list=str(lst),
                          show_progress=False)
    assert osp.basename(lab) == 'cs_train.perc_x.json'
    assert osp.basename(unl) == 'cs_train.perc_x-unlabeled.json'
    names = sorted(osp.basename(im['file_name'])
                   for im in _read(lab)['images'])
    assert names == ['bremen_000007_000019_leftImg8bit.png',
                     'ulm_000003_000019_leftImg8bit.png']
    assert len(_read(lab)['annotations']) == 4
    assert len(_read(unl)['images']) == 18


def test_labeled_list_unmatched(tmp_path, ann_file):
    lst = tmp_path / 'l.txt'
    lst.write_text('000001.png\nnot_there.png\n')
    with pytest.raises(ValueError, match='not_there'):
        split_coco(ann_file, str(tmp_path / 'o'), labeled_list=str(lst))
    lab, _ = split_coco(ann_file, str(tmp_path / 'o'),
                        labeled_list=str(lst), strict=False,
                        show_progress=False)
    assert [im['file_name'] for im in _read(lab)['images']] == [
        'train/000001.png']


@pytest.mark.skipif(not osp.isfile(CITYSCAPES_LIST),
                    reason='shared Cityscapes split lists not available')
def test_real_cityscapes_list(tmp_path):
    with open(CITYSCAPES_LIST) as f:
        listed = [ln.strip() for ln in f if ln.strip()]
    stems = [frame_key(n) for n in listed]
    extra = [f'zzz_{i:06d}_000019' for i in range(3)]
    ann = _write(tmp_path / 'train.json', _coco(
        [f'{s.split("_")[0]}/{s}_leftImg8bit.png' for s in stems + extra],
        anns_per_image=1))
    lab, unl = split_coco(ann, str(tmp_path), labeled_list=CITYSCAPES_LIST,
                          show_progress=False)
    assert len(_read(lab)['images']) == len(set(stems))
    assert len(_read(unl)['images']) == 3


MALFORMED = {
    'syntax': ('{"images": [}', 'line 1 column'),
    'missing_images': ({'annotations': [], 'categories': []}, "'images'"),
    'missing_annotations': ({'images': [], 'categories': []},
                            "'annotations'"),
    'annotations_not_list': ({'images': [], 'annotations': {},
                              'categories': []}, "'annotations'"),
    'top_level_list': ([], 'JSON object'),
    'image_without_file_name': ({'images': [{'id': 1, 'height': 2,
                                             'width': 2}],
                                 'annotations': [], 'categories': []},
                                "'images[0]' is missing 'file_name'"),
    'string_id': ({'images': [{'id': '1', 'file_name': 'a.png', 'height': 2,
                               'width': 2}],
                   'annotations': [], 'categories': []}, "'images[0].id'"),
    'unknown_image_id': ({'images': [{'id': 1, 'file_name': 'a.png',
                                      'height': 2, 'width': 2}],
                          'annotations': [{'id': 1, 'image_id': 7}],
                          'categories': []}, 'unknown image_id'),
}


@pytest.mark.parametrize('case', sorted(MALFORMED))
def test_malformed_json(tmp_path, case):
    content, expected = MALFORMED[case]
    path = tmp_path / 'broken_ann.json'
    path.write_text(content if isinstance(content, str) else
                    json.dumps(content, indent=1))
    out = tmp_path / 'out'
    with pytest.raises(CocoFormatError) as err:
        split_coco(str(path), str(out), percent=10, show_progress=False)
    assert isinstance(err.value, ValueError)
    assert 'broken_ann.json' in str(err.value)
    assert expected in str(err.value)
    assert not out.exists() or os.listdir(out) == []


def test_syntax_error_line(tmp_path):
    path = tmp_path / 'a.json'
    path.write_text('{\n  "images": [],\n  "annotations": [,]\n}')
    with pytest.raises(CocoFormatError, match='line 3 column'):
        load_coco_json(str(path))


def _cli():
    return load_tool('misc/split_coco.py')


def test_cli(tmp_path, ann_file, capsys):
    cli = _cli()
    out = tmp_path / 'semi'
    rc = cli.main(['--data-root', str(tmp_path), '--ann-file',
                   osp.basename(ann_file), '--out-dir', str(out),
                   '--labeled-percent', '10', '20', '--seeds', '1', '2'])
    assert rc == 0
    assert len(os.listdir(out)) == 8
    assert (out / 'instances_train.2@20-unlabeled.json').is_file()
    bad = tmp_path / 'bad.json'
    bad.write_text('{')
    rc = cli.main(['--data-root', str(tmp_path), '--ann-file', 'bad.json',
                   '--labeled-percent', '10'])
    assert rc == 1 and 'bad.json' in capsys.readouterr().err
