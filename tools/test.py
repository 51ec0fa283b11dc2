"""Evaluate a checkpoint with mmssis (same flags as mmdet's ``tools/test.py``)."""
import argparse
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmssis.utils import (adapt_cfg_to_machine, default_work_dir, init_cpu_distributed,
                          install_safe_globals, register_all_modules, sam_free_message,
                          set_local_rank_env, strip_sam_for_eval)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (evaluate) an mmssis model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save evaluation results')
    parser.add_argument('--out', help='dump predictions to this pickle file (.pkl)')
    parser.add_argument('--show-dir', help='draw predictions into this dir under work_dir')
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
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')

    cfg = Config.fromfile(args.config, format_python_code=not args.no_format_config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = default_work_dir(args.config)
    # SAM (stage-1 distillation, stage-2 pseudo-mask refinement) only acts in training and
    # is not in the checkpoint: evaluate without building it or reading its checkpoint.
    sam_removed = strip_sam_for_eval(cfg)
    adapt_cfg_to_machine(cfg)
    init_cpu_distributed(cfg)
    cfg.load_from = args.checkpoint

    if args.show_dir:
        vis_hook = cfg.default_hooks.get('visualization', None)
        if vis_hook is None:
            raise RuntimeError(f'{args.config}: --show-dir needs a `visualization` default hook')
        vis_hook.draw = True
        vis_hook.test_out_dir = args.show_dir

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if sam_removed:
        runner.logger.info(sam_free_message(sam_removed))
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {args.out}: the output file must be a .pkl file')
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()
