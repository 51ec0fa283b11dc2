"""UnlabeledImageFolder: files found, sized and checked when the data set loads."""
import cv2
import numpy as np
import pytest
from mmengine.dataset import ConcatDataset

from mmssis.datasets import CheckedCocoDataset, CorruptImageError, UnlabeledImageFolder
from mmssis.registry import DATASETS

CLASSES = ('a', 'b')


def _folder(tmp_path):
    root = tmp_path / 'unl'
    (root / 'sub').mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / 'b.png'), np.zeros((30, 20, 3), np.uint8))
    cv2.imwrite(str(root / 'sub' / 'a.JPG'), np.zeros((10, 40, 3), np.uint8))
    (root / 'readme.txt').write_text('not an image')
    return root


def _ds(root, **kw):
    return UnlabeledImageFolder(data_root=str(root.parent) + '/',
                                data_prefix=dict(img=root.name + '/'),
                                metainfo=dict(classes=CLASSES), pipeline=[], **kw)


def test_finds_sorted_images_recursively_with_sizes(tmp_path):
    ds = _ds(_folder(tmp_path))
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [i['img_path'].split('unl/')[1] for i in infos] == ['b.png', 'sub/a.JPG']
    assert [(i['height'], i['width'], i['img_id']) for i in infos] == [(30, 20, 0), (10, 40, 1)]
    assert len(_ds(_folder(tmp_path), recursive=False)) == 1
    assert 'UnlabeledImageFolder' in DATASETS.module_dict


def test_file_list_selects_images(tmp_path):
    root = _folder(tmp_path)
    (tmp_path / 'list.txt').write_text('# chosen\nsub/a.JPG\n\n')
    ds = _ds(root, file_list=str(tmp_path / 'list.txt'))
    assert [ds.get_data_info(i)['img_path'] for i in range(len(ds))] == [str(root / 'sub/a.JPG')]


def test_unreadable_files_are_named_or_skipped(tmp_path, log_records):
    root = _folder(tmp_path)
    (root / 'broken.png').write_bytes(b'\x89PNG garbage')
    with pytest.raises(CorruptImageError, match='broken.png'):
        _ds(root)
    ds = _ds(root, unreadable='skip')
    assert len(ds) == 2 and ds.check_report['unreadable_files'] == [str(root / 'broken.png')]
    assert any('skipping 1 unreadable' in m for m in log_records)


def test_empty_folder_is_an_error_naming_it(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='empty'):
        _ds(tmp_path / 'empty')


def test_concat_with_a_labelled_coco_set_of_the_same_classes(tmp_path, tiny_demo):
    """ConcatDataset (the semi configs' train set) requires equal metainfo."""
    from mmssis.demo import DEMO_CLASSES
    lab = CheckedCocoDataset(data_root=tiny_demo.root, ann_file=tiny_demo.val_ann,
                             data_prefix=dict(img='images/'),
                             metainfo=dict(classes=DEMO_CLASSES), pipeline=[])
    _folder(tmp_path)
    unl = UnlabeledImageFolder(data_root=str(tmp_path) + '/', data_prefix=dict(img='unl/'),
                               metainfo=dict(classes=DEMO_CLASSES), pipeline=[])
    assert unl.metainfo == lab.metainfo
    cat = ConcatDataset([lab, unl])
    assert len(cat) == len(lab) + 2
