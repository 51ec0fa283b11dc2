"""Draw a semi-supervised config's pseudo-labels offline, one PNG panel per image.

Runs the detector's pseudo-label path on the config's *unlabelled* training data set
(``train_dataloader.dataset.datasets[1]``, its own pipeline: same views as in training)
with the checkpoint's teacher: teacher prediction -> score / mask filter -> optional SAM
refinement (``--sam``, the config's ``semi_train_cfg.sam_refiner``) -> projection into the
student view -> the config's instance mixer (ARP), if any. Each PNG shows, side by side,
the teacher view with the kept pseudo-masks, the SAM-refined masks (``--sam``) and the
student input with the pseudo-masks it is trained on::

    python tools/analysis_tools/browse_pseudo_labels.py \\
        configs/demo/s4m-refine_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py \\
        work_dirs/demo/sup/final.pth --out-dir work_dirs/demo/pseudo_vis --num 8 --sam

A plain (stage-1) checkpoint fills the teacher; a semi checkpoint loads both networks.
Training uses :class:`mmssis.engine.hooks.PseudoLabelVisHook` for the same drawing.
"""
from __future__ import annotations

import argparse
import copy
import os
import os.path as osp
from typing import List, Optional, Sequence

import mmcv
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint, set_random_seed

from mmssis.datasets.semi_data import build_unlabelled_dataset  # noqa: F401 (re-export)
from mmssis.engine.hooks.pseudo_label_vis_hook import unlabelled_batch
from mmssis.engine.hooks.sam_benefit_hook import restore_sam_decisions
from mmssis.models.utils import view_normalization
from mmssis.registry import MODELS
from mmssis.utils import install_safe_globals, register_all_modules
from mmssis.utils.rank_seed import derived_seed
from mmssis.visualization import draw_rows_quietly, make_drawer, student_title, tile_rows


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw the pseudo-labels of a semi config')
    parser.add_argument('config', help='semi-supervised (SemiMaskDetector) config')
    parser.add_argument('checkpoint', help='teacher checkpoint (stage-1 plain or semi)')
    parser.add_argument('--out-dir', required=True, help='where the PNG panels go')
    parser.add_argument('--num', type=int, default=8, help='number of unlabelled images')
    parser.add_argument('--sam', action='store_true',
                        help="refine with the config's semi_train_cfg.sam_refiner")
    parser.add_argument('--no-mixer', action='store_true',
                        help="skip the config's instance mixer (ARP)")
    parser.add_argument('--no-student', action='store_true', help='omit the student panel')
    parser.add_argument('--batch-size', type=int, default=2,
                        help='images per teacher batch (ARP mixes within a batch)')
    parser.add_argument('--panel', default=None,
                        help='also write all rows into this one PNG (one image per row)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the views (random resize, flip, photometric): the same '
                        'seed draws the same panels')
    parser.add_argument('--device', default=None,
                        help='cuda when available, else cpu (default)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    from mmssis.utils import default_device
    args.device = args.device or default_device()
    return args


def build_semi_model(cfg: Config, checkpoint: Optional[str], use_sam: bool,
                     device: str = 'cpu') -> torch.nn.Module:
    """Build the config's ``SemiMaskDetector`` and load ``checkpoint`` into it.

    Args:
        cfg: A semi config (``model.type`` a ``SemiMaskDetector``).
        checkpoint: Plain (fills the teacher) or semi checkpoint; None keeps the init.
        use_sam: Keep ``semi_train_cfg.sam_refiner`` (else it is removed, so no SAM
            weights are loaded). A ``policy='measured'`` refiner gets the decisions saved
            in ``checkpoint`` (:func:`restore_sam_decisions`); without any it refines every
            pseudo-mask, and says so.
        device: Where the model runs.

    Returns:
        The detector in eval mode.
    """
    model_cfg = copy.deepcopy(cfg.model)
    semi = model_cfg.get('semi_train_cfg') or {}
    if 'detector' not in model_cfg:
        raise ValueError(f'{cfg.filename}: model is not a semi detector (no `detector`)')
    if use_sam and not semi.get('sam_refiner'):
        raise ValueError(f'--sam: {cfg.filename} has no model.semi_train_cfg.sam_refiner')
    if not use_sam:
        semi.pop('sam_refiner', None)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmssis')):
        model = MODELS.build(model_cfg)
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu') if checkpoint else None
    if use_sam and model.sam_refiner.policy == 'measured':
        enabled = restore_sam_decisions(model, ckpt)
        if enabled is None:  # e.g. a stage-1 teacher: no run has measured SAM yet
            model.sam_refiner.policy = 'always'
            print("policy 'measured': the checkpoint holds no SAM decisions (not a measured "
                  "run's checkpoint); drawing SAM's refinement of every pseudo-mask")
        else:
            print(f"policy 'measured': SAM refines the classes the run decided: {enabled}")
    return model.to(device).eval()


def browse(model: torch.nn.Module, dataset, out_dir: str, num: int, batch_size: int = 2,
           use_sam: bool = True, use_mixer: bool = True, show_student: bool = True,
           dataset_meta: Optional[dict] = None, panel: Optional[str] = None,
           seed: int = 0) -> List[str]:
    """Write ``<out_dir>/<index>_<image stem>.png`` panels for the first ``num`` images.

    Args:
        model: A ``SemiMaskDetector`` (see :func:`build_semi_model`).
        dataset: Unlabelled data set whose pipeline ends in ``MultiBranch``.
        out_dir: Output directory (created).
        num: Images to draw (capped at the data set size).
        batch_size: Images per teacher batch; the mixer pairs images within a batch.
        use_sam / use_mixer: Use the model's SAM refiner / instance mixer if it has one.
        show_student: Draw the student panel.
        dataset_meta: Class names and palette (default: the data set's ``metainfo``).
        panel: Also write every row, stacked top to bottom, into this PNG.
        seed: The pipeline's random views (drawn from the global generators) of the
            batch starting at image ``k`` come from ``(seed, 'browse', k)``: the same
            seed gives the same panels, whatever ran before in the process.

    Returns:
        The written file paths, in data set order.
    """
    os.makedirs(out_dir, exist_ok=True)
    drawer = make_drawer(dataset_meta or getattr(dataset, 'metainfo', None),
                         name='browse_pseudo_labels')
    titles = dict(student=student_title(model) if use_mixer else 'student')
    num = min(num, len(dataset))
    written, all_rows = [], []
    for start in range(0, num, batch_size):
        indices = list(range(start, min(start + batch_size, num)))
        set_random_seed(derived_seed(seed, 'browse', start, step=0) % 2**32)
        data = unlabelled_batch(model, dataset, indices)
        record = model.pseudo_label(
            data['inputs']['unsup_teacher'], data['data_samples']['unsup_teacher'],
            data['inputs']['unsup_student'], data['data_samples']['unsup_student'],
            refine=use_sam, mix=use_mixer)
        rows = draw_rows_quietly(record, view_normalization(model.data_preprocessor), drawer,
                                 show_student=show_student, titles=titles)
        for index, sample, row in zip(indices, record.teacher_samples, rows):
            stem = osp.splitext(osp.basename(sample.metainfo.get('img_path', 'img')))[0]
            path = osp.join(out_dir, f'{index:05d}_{stem}.png')
            mmcv.imwrite(tile_rows([row])[..., ::-1], path)  # RGB -> BGR for OpenCV
            written.append(path)
            all_rows.append(row)
    if panel and all_rows:
        os.makedirs(osp.dirname(osp.abspath(panel)), exist_ok=True)
        mmcv.imwrite(tile_rows(all_rows)[..., ::-1], panel)
    return written


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    install_safe_globals()  # mmengine's checkpoint loader: weights_only + allow-list
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_semi_model(cfg, args.checkpoint, args.sam, args.device)
    dataset = build_unlabelled_dataset(cfg)
    written = browse(model, dataset, args.out_dir, args.num, args.batch_size,
                     use_sam=args.sam, use_mixer=not args.no_mixer,
                     show_student=not args.no_student, panel=args.panel, seed=args.seed)
    print(f'wrote {len(written)} panels to {args.out_dir}' +
          (f' and the stacked panel {args.panel}' if args.panel else ''))
    return written


if __name__ == '__main__':
    main()
