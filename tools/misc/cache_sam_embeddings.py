"""Encode a semi config's unlabelled images with its SAM once, into the embedding cache.

SAM's image encoder is the expensive part of online refinement. With
``embed_on='original'`` and a disk cache (``sam_refiner.cache.disk_dir``) the
embeddings do not depend on the augmentation, so they can be computed once before training
(on any machine) and every later run, resumed run or parallel run reads them::

    python tools/misc/cache_sam_embeddings.py \\
        configs/demo/s4m-refine_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py

Images already in the cache are skipped, so the tool can be re-run or interrupted.
"""
import argparse
import time
from typing import Dict, List, Optional

from mmengine.config import Config, DictAction


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Pre-compute SAM image embeddings')
    parser.add_argument('config', help='semi config with model.semi_train_cfg.sam_refiner')
    parser.add_argument('--max-images', type=int, default=None)
    parser.add_argument('--include-labelled', action='store_true',
                        help='also the labelled images (those of a calibration slice on '
                        'the labelled split: SamBenefitHook refines them with this SAM)')
    parser.add_argument('--device', default=None, help='override the SAM device')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, int]:
    args = parse_args(argv)
    from mmengine.registry import DefaultScope

    from mmssis.datasets.semi_data import build_labelled_dataset, build_unlabelled_dataset
    from mmssis.registry import MODELS
    from mmssis.utils import install_safe_globals, register_all_modules
    register_all_modules(init_default_scope=False)
    install_safe_globals()  # mmengine's checkpoint loader: weights_only + allow-list
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    refiner_cfg = (cfg.model.get('semi_train_cfg') or {}).get('sam_refiner')
    if not refiner_cfg:
        raise SystemExit(f'{args.config}: no model.semi_train_cfg.sam_refiner to cache for')
    if args.device:
        refiner_cfg.backend.device = args.device
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmssis')):
        refiner = MODELS.build(refiner_cfg)
    dataset = build_unlabelled_dataset(cfg)
    dataset.full_init()
    n = len(dataset) if args.max_images is None else min(args.max_images, len(dataset))
    paths = [dataset.get_data_info(i)['img_path'] for i in range(n)]
    if args.include_labelled:
        labelled = build_labelled_dataset(cfg)
        labelled.full_init()
        paths = [labelled.get_data_info(i)['img_path'] for i in range(len(labelled))] + paths
    t = time.time()
    stats = refiner.precompute(paths)
    cache = refiner.cache
    print(f'\n{stats["encoded"]} image(s) encoded, {stats["cached"]} already cached, '
          f'{time.time() - t:.0f} s; cache: {cache.disk_dir or "memory only"}')
    return stats


if __name__ == '__main__':
    main()
