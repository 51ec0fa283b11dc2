"""tools/dataset_converters/voc_to_coco_instance.py on a tiny synthetic VOC + SBD tree."""
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from mmssis.testing.tools import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
conv = load_tool('dataset_converters/voc_to_coco_instance.py')

H, W = 24, 32


def _palette_png(path, arr):
    img = Image.fromarray(arr.astype(np.uint8), mode='P')
    img.putpalette([(i * 37) % 256 for i in range(768)])
    img.save(path)


def _voc_maps():
    """Two instances: a person (15) with a void border and a car (7)."""
    inst = np.zeros((H, W), np.uint8)
    cls = np.zeros((H, W), np.uint8)
    inst[2:10, 3:12] = 1
    cls[2:10, 3:12] = 15
    inst[2, 3:12] = 255  # boundary: void, not part of the instance
    cls[2, 3:12] = 255
    inst[14:20, 20:30] = 2
    cls[14:20, 20:30] = 7
    return inst, cls


@pytest.fixture()
def tree(tmp_path):
    voc = tmp_path / 'VOC2012'
    for d in ('JPEGImages', 'SegmentationObject', 'SegmentationClass', 'ImageSets/Segmentation'):
        (voc / d).mkdir(parents=True)
    inst, cls = _voc_maps()
    for name in ('2007_000032', '2007_000039'):
        _palette_png(voc / 'SegmentationObject' / f'{name}.png', inst)
        _palette_png(voc / 'SegmentationClass' / f'{name}.png', cls)
        Image.new('RGB', (W, H), (120, 90, 60)).save(voc / 'JPEGImages' / f'{name}.jpg')
    (voc / 'ImageSets/Segmentation/train.txt').write_text('2007_000032\n')
    (voc / 'ImageSets/Segmentation/val.txt').write_text('2007_000039\n')

    sbd = tmp_path / 'sbd'
    (sbd / 'inst').mkdir(parents=True)
    from scipy.io import savemat
    seg = np.zeros((H, W), np.uint8)
    seg[5:15, 5:15] = 1
    savemat(sbd / 'inst' / '2008_000002.mat',
            {'GTinst': {'Segmentation': seg, 'Categories': np.array([[12]], np.uint8),
                        'Boundaries': np.zeros((1, 1))}})
    Image.new('RGB', (W, H)).save(voc / 'JPEGImages' / '2008_000002.jpg')
    # SBD lists a VOC-val image (must be excluded) and a VOC-train one (VOC masks win).
    (sbd / 'train.txt').write_text('2008_000002\n2007_000039\n')
    (sbd / 'val.txt').write_text('2007_000032\n')
    return voc, sbd


def _load(path):
    with open(path) as f:
        return json.load(f)


def test_voc_split_to_coco(tree, tmp_path):
    voc, _ = tree
    out = tmp_path / 'out' / 'voc_train.json'
    stats = conv.convert(str(voc), str(out), split='train', show_progress=False,
                         check_images=True)
    assert stats['images'] == 1 and stats['annotations'] == 2
    doc = _load(out)
    assert [c['name'] for c in doc['categories']][:2] == ['aeroplane', 'bicycle']
    assert len(doc['categories']) == 20 and doc['categories'][14]['name'] == 'person'
    img = doc['images'][0]
    assert img == dict(id=2007000032, file_name='2007_000032.jpg', height=H, width=W)
    person, car = sorted(doc['annotations'], key=lambda a: -a['category_id'])
    assert person['category_id'] == 15 and car['category_id'] == 7
    m = mask_utils.decode(person['segmentation'])
    assert m.sum() == 7 * 9 and not m[2].any()  # void row excluded
    assert person['bbox'] == [3.0, 3.0, 9.0, 7.0] and person['area'] == 63.0
    assert person['iscrowd'] == 0 and isinstance(person['segmentation']['counts'], str)


def test_trainaug_adds_sbd_without_val_leak(tree, tmp_path):
    voc, sbd = tree
    out = tmp_path / 'trainaug.json'
    stats = conv.convert(str(voc), str(out), split='train', sbd_root=str(sbd),
                         sbd_splits=('train', 'val'), show_progress=False)
    assert (stats['from_voc'], stats['from_sbd']) == (1, 1)
    doc = _load(out)
    assert [i['file_name'] for i in doc['images']] == ['2007_000032.jpg', '2008_000002.jpg']
    sbd_ann = [a for a in doc['annotations'] if a['image_id'] == 2008000002]
    assert len(sbd_ann) == 1 and sbd_ann[0]['category_id'] == 12
    assert sbd_ann[0]['area'] == 100.0


def test_loads_with_checked_coco_dataset(tree, tmp_path):
    from mmssis.datasets import CheckedCocoDataset
    voc, _ = tree
    out = tmp_path / 'val.json'
    conv.convert(str(voc), str(out), split='val', show_progress=False)
    ds = CheckedCocoDataset(
        data_root=str(voc), ann_file=str(out), data_prefix=dict(img='JPEGImages/'),
        metainfo=dict(classes=conv.VOC_CLASSES), pipeline=[], test_mode=True)
    info = ds.get_data_info(0)
    assert len(info['instances']) == 2
    assert sorted(i['bbox_label'] for i in info['instances']) == [6, 14]


def test_missing_png_is_named(tree, tmp_path):
    voc, _ = tree
    (voc / 'SegmentationClass' / '2007_000032.png').unlink()
    with pytest.raises(conv.VOCConversionError) as err:
        conv.convert(str(voc), str(tmp_path / 'x.json'), split='train', show_progress=False)
    msg = str(err.value)
    assert 'missing file' in msg and 'SegmentationClass' in msg and '2007_000032' in msg
    assert '--on-error skip' in msg


def test_corrupt_files_raise_or_skip(tree, tmp_path):
    voc, sbd = tree
    (voc / 'SegmentationObject' / '2007_000032.png').write_bytes(b'not a png')
    (sbd / 'inst' / '2008_000002.mat').write_bytes(b'garbage')
    with pytest.raises(conv.VOCConversionError, match='corrupt or unreadable PNG'):
        conv.convert(str(voc), str(tmp_path / 'x.json'), split='train', show_progress=False)
    # Skipping: both bad images dropped -> nothing left is an error too.
    with pytest.raises(conv.VOCConversionError, match='no image could be converted'):
        conv.convert(str(voc), str(tmp_path / 'x.json'), split='train', sbd_root=str(sbd),
                     on_error='skip', show_progress=False)
    stats = conv.convert(str(voc), str(tmp_path / 'v.json'), split='val', on_error='skip',
                         show_progress=False)
    assert stats['images'] == 1 and not stats['skipped']


def test_rgb_png_and_size_mismatch_explained(tree, tmp_path):
    voc, _ = tree
    Image.new('RGB', (W, H)).save(voc / 'SegmentationObject' / '2007_000032.png')
    with pytest.raises(conv.VOCConversionError, match='mode "RGB"'):
        conv.convert(str(voc), str(tmp_path / 'x.json'), split='train', show_progress=False)
    Image.new('RGB', (W + 1, H)).save(voc / 'JPEGImages' / '2007_000039.jpg')
    with pytest.raises(conv.VOCConversionError, match='33x24 but its masks are 32x24'):
        conv.convert(str(voc), str(tmp_path / 'x.json'), split='val', check_images=True,
                     show_progress=False)


def test_cli(tree, tmp_path, capsys):
    voc, sbd = tree
    out = tmp_path / 'cli.json'
    rc = conv.main(['--voc-root', str(voc), '--split', 'train', '--sbd-root', str(sbd),
                    '--out', str(out), '--no-progress'])
    assert rc == 0 and out.exists()
    assert '2 images (1 VOC, 1 SBD)' in capsys.readouterr().out
    rc = conv.main(['--voc-root', str(tmp_path / 'nope'), '--out', str(out), '--no-progress'])
    assert rc == 1 and 'VOC root not found' in capsys.readouterr().err
