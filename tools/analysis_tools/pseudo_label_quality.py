"""Offline pseudo-label quality of a teacher checkpoint, with and without SAM refinement.

Treats a labelled set (default: the config's validation set) as unlabelled, runs the
teacher through the detector's pseudo-label path (score > ``score_thr``, mask
``sigmoid >= mask_thr``, area > ``min_mask_area``; then SAM) and scores the pseudo-masks
against the GT masks (greedy matching at IoU >= 0.5; see
:mod:`mmssis.evaluation.pseudo_label_quality`)::

    python tools/analysis_tools/pseudo_label_quality.py \
        configs/demo/mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py \
        work_dirs/demo/sup/final.pth \
        --ann-file data/demo/annotations/instances_val.json --sam lite_medsam \
        --out work_dirs/demo/pseudo_quality.json

A plain (stage-1) detector config/checkpoint is wrapped in a ``SemiMaskDetector`` whose
teacher receives the checkpoint; a semi-supervised config is used as is (its teacher
predicts). ``--sam config`` uses the config's ``semi_train_cfg.sam_refiner``. A config with an
``instance_mixer`` (ARP) also scores the last stage's pseudo-labels after the config's mixing
of each batch (``--batch-size`` images, as the student receives them) against the equally
mixed ground truth (``mixed``).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import os.path as osp
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


# Flags that build a refiner; they do not apply to ``--sam config``.
REFINER_FLAGS = ('sam_checkpoint', 'num_points', 'use_box', 'multimask', 'fusion',
                 'min_teacher_iou', 'embed_on', 'seed', 'box_margin')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Pseudo-label quality of a teacher')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--ann-file', help='COCO json with GT masks (default: the '
                        "config's val set)")
    parser.add_argument('--img-dir', help='image directory of --ann-file (default: the '
                        "config's data_root + data_prefix)")
    parser.add_argument('--split', choices=['val', 'test'], default='val',
                        help='which dataloader config to take the pipeline from')
    parser.add_argument('--max-images', type=int, default=None)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--score-thr', type=float, default=None,
                        help="pseudo-label score threshold (default: the config's, else 0.7)")
    parser.add_argument('--iou-thr', type=float, default=0.5, help='matching IoU')
    parser.add_argument('--class-agnostic', action='store_true',
                        help='match regardless of class')
    parser.add_argument('--sam', default='lite_medsam',
                        choices=['none', 'config', 'lite_medsam', 'vit_b', 'vit_l', 'vit_h'])
    parser.add_argument('--sam-checkpoint', default=None)
    parser.add_argument('--num-points', type=int, default=None)
    parser.add_argument('--use-box', action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument('--multimask', action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument('--fusion', choices=['replace', 'mean_prob'], default='replace',
                        help="'replace': SAM's mask (S4M); 'mean_prob': mean of the "
                        "teacher's and SAM's probabilities >= 0.5")
    parser.add_argument('--min-teacher-iou', type=float, default=None,
                        help="keep the teacher's mask when SAM's overlaps it less")
    parser.add_argument('--box-margin', type=float, default=0.0,
                        help='pixels added on each side of the prompt boxes')
    parser.add_argument('--embed-on', choices=['original', 'view'], default='original',
                        help='encode the original image or the teacher view with SAM')
    parser.add_argument('--device', default=None,
                        help='cuda when available, else cpu (default)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=None, help='write the metrics to this json')
    args = parser.parse_args(argv)
    from mmssis.utils import default_device
    args.device = args.device or default_device()
    if args.sam == 'config':
        # The config's refiner is used as it is: refuse flags that would silently not apply.
        ignored = [f"--{dest.replace('_', '-')}" for dest in REFINER_FLAGS
                   if getattr(args, dest) != parser.get_default(dest)]
        if ignored:
            parser.error(f"{', '.join(ignored)} cannot be combined with --sam config (the "
                         "config's sam_refiner is used as it is); edit the config instead")
    return args


def build_semi_model(cfg, score_thr: Optional[float] = None):
    """The config's model as a ``SemiMaskDetector`` (a plain detector gets wrapped)."""
    from mmdet.models.detectors import SemiBaseDetector

    from mmssis.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    if not issubclass(MODELS.get(model_cfg['type']), SemiBaseDetector):
        model_cfg = dict(
            type='SemiMaskDetector', detector=model_cfg,
            data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                                   data_preprocessor=model_cfg['data_preprocessor']),
            semi_train_cfg=dict())
    semi = model_cfg.setdefault('semi_train_cfg', {})
    config_refiner = semi.pop('sam_refiner', None)  # built separately (``--sam config``)
    if score_thr is not None:
        semi['score_thr'] = score_thr
    return MODELS.build(model_cfg), config_refiner


def build_dataloader(cfg, split: str, ann_file: Optional[str], img_dir: Optional[str],
                     batch_size: int):
    from mmengine.runner import Runner
    loader = copy.deepcopy(cfg[f'{split}_dataloader'])
    loader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    loader.pop('batch_sampler', None)
    dataset = loader['dataset']
    if ann_file:
        if not osp.isfile(ann_file):
            raise FileNotFoundError(f'annotation file not found: {ann_file}')
        dataset['ann_file'] = osp.abspath(ann_file)
        if not img_dir:  # COCO layout: <root>/annotations/x.json, images in <root>/images
            img_dir = osp.join(osp.dirname(osp.dirname(osp.abspath(ann_file))), 'images')
    if img_dir:
        if not osp.isdir(img_dir):
            raise FileNotFoundError(f'image directory not found: {img_dir}')
        dataset['data_prefix'] = dict(img=osp.abspath(img_dir) + os.sep)
    dataset['test_mode'] = True
    return Runner.build_dataloader(loader)


def build_pseudo_refiner(args, config_refiner):
    """A ``SamMaskRefiner`` (or None) for ``--sam``."""
    from mmssis.registry import MODELS
    from mmssis.sam.presets import build_refiner
    if args.sam == 'none':
        return None
    if args.sam == 'config':
        if not config_refiner:
            raise ValueError('--sam config: the config has no semi_train_cfg.sam_refiner')
        # every kept pseudo-mask is refined, whatever the config's policy: the question
        # here is what SAM would do (a 'measured' run decides per class from this table)
        return MODELS.build(config_refiner).ungated()
    return build_refiner(args.sam, args.sam_checkpoint, args.device, args.num_points,
                         args.use_box, args.multimask, args.seed, fusion=args.fusion,
                         min_teacher_iou=args.min_teacher_iou, embed_on=args.embed_on,
                         box_margin=args.box_margin)


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    from mmssis.evaluation.pseudo_label_eval import evaluate_pseudo_labels
    from mmssis.evaluation import (SamBenefit, format_benefit_table, format_quality_table,
                                   sam_helps)
    from mmssis.utils import install_safe_globals, register_all_modules
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} not found: {path}')
    register_all_modules(init_default_scope=False)
    install_safe_globals()  # mmengine's checkpoint loader: weights_only + allow-list
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmssis'))
    model, config_refiner = build_semi_model(cfg, args.score_thr)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.to(args.device)
    loader = build_dataloader(cfg, args.split, args.ann_file, args.img_dir, args.batch_size)
    refiner = build_pseudo_refiner(args, config_refiner)
    print(f'SAM refiner: {refiner!r}')
    benefit = SamBenefit(model.num_classes, args.iou_thr) if refiner is not None else None
    metrics = evaluate_pseudo_labels(model, loader, max_images=args.max_images,
                                     refiner=refiner, iou_thr=args.iou_thr,
                                     class_aware=not args.class_agnostic, progress=True,
                                     sam_benefit=benefit, mixer=model.instance_mixer)
    print()
    print(f'pseudo-labels: score_thr={model.semi_train_cfg.score_thr}, '
          f'mask_thr={model.semi_train_cfg.mask_thr}, '
          f'min_mask_area={model.semi_train_cfg.min_mask_area}; matching IoU >= '
          f"{args.iou_thr}{' (class-agnostic)' if args.class_agnostic else ''}")
    print(format_quality_table(metrics))
    if benefit is not None:
        table = benefit.compute()
        names = list(loader.dataset.metainfo['classes'])
        print('\nDoes SAM help? Per class, kept pseudo-masks and their SAM refinement scored '
              'against the GT the teacher mask matches (mask IoU):')
        print(format_benefit_table(table, names, sam_helps(table)))
        metrics.update({f'sam_gain/{n}': float(g) for n, g in zip(names, table['gain'])})
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(metrics=metrics, args=vars(args)), f, indent=2)
        print(f'metrics written to {args.out}')
    return metrics


if __name__ == '__main__':
    main()
