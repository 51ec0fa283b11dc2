"""Train a (semi-supervised) instance segmentation model with mmssis.

Same flags as mmdet's ``tools/train.py``; run it directly, through ``mim train mmssis`` or
through ``tools/dist_train.sh CONFIG N``.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmssis.utils import (adapt_cfg_to_machine, default_work_dir, init_cpu_distributed,
                          install_safe_globals, register_all_modules, set_local_rank_env)
from mmssis.utils.batch_recipe import keep_global_batch
from mmssis.utils.preflight import check_before_training
from mmssis.models.augments import check_arp_layout
from mmssis.utils.sampler_check import check_semi_sampler


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train an mmssis model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the LR by the actual batch size')
    parser.add_argument('--keep-global-batch', action='store_true',
                        help="train with the recipe's global batch (auto_scale_lr."
                        'base_batch_size) on however many GPUs run: per-GPU batch = '
                        'global / GPUs, per-source split kept, learning rate unchanged')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or (no value) from the latest checkpoint in the '
        'work dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--no-format-config', action='store_true',
                        help='log and save the config without yapf formatting (mmengine '
                        'formats it at every dump, checkpoint and log; slow on large '
                        'configs)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    set_local_rank_env(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
    register_all_modules(init_default_scope=False)
    install_safe_globals()  # mmengine's checkpoint loader: weights_only + allow-list

    cfg = Config.fromfile(args.config, format_python_code=not args.no_format_config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = default_work_dir(args.config)
    adapt_cfg_to_machine(cfg)
    init_cpu_distributed(cfg)
    world_size = int(os.environ.get('WORLD_SIZE', 1))
    if args.keep_global_batch:
        if args.auto_scale_lr:
            raise SystemExit('--keep-global-batch keeps the learning rate; --auto-scale-lr '
                             'scales it: use one of them')
        batch = keep_global_batch(cfg, world_size)
        print(f'--keep-global-batch: {world_size} process(es) x {batch["batch_size"]} images'
              + (f' (per source {batch["source_ratio"]})' if batch['source_ratio'] else '')
              + f' = the recipe batch {batch["global_batch"]}')
    # Fail before any model/data is built when batch size, source_ratio and the number of
    # processes do not fit (mmdet's GroupMultiSourceSampler would round or hang instead).
    counts = check_semi_sampler(cfg, world_size=world_size)
    # ARP acts on each GPU's unlabelled images (the second source): refuse a layout on which
    # it would do nothing or mix every image, before anything is built.
    if counts:
        check_arp_layout(cfg.model, counts[-1])
    # Fail before the runner exists on a setup that would train silently wrong: a stage-2
    # config without its stage-1 teacher (or one of another class count), num_classes !=
    # len(metainfo.classes), --cfg-options custom_data.* (R18-R23 of docs/reliability.md).
    check_before_training(cfg, cfg_options=args.cfg_options, resume=args.resume)

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise RuntimeError(f'{args.config}: --auto-scale-lr needs '
                               '`auto_scale_lr = dict(base_batch_size=...)` in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume: checkpoint {args.resume} does not exist')
        cfg.resume = True
        cfg.load_from = args.resume

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
