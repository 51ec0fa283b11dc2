"""Configs for very short real training runs on the tiny demo data (tests, CI)."""
import uuid

from mmengine.config import Config

DEMO_SUP_CONFIG = 'configs/demo/mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py'
DEMO_SEMI_CONFIG = 'configs/demo/gd_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'


def shrink_for_test(cfg: Config, data_root: str, work_dir: str, max_iters: int = 4,
                    ckpt_interval: int = 2, batch_size: int = 2) -> Config:
    """Point a demo config at a tiny demo set and make it run for a few iterations.

    Args:
        cfg: A demo config (supervised or semi).
        data_root: Root of a demo set made by ``generate_demo_dataset``.
        work_dir: Where logs and checkpoints go.
        max_iters: Iterations to train.
        ckpt_interval: Save a checkpoint every this many iterations.
        batch_size: Per-process batch size (semi: half labelled, half unlabelled).

    Returns:
        The modified config (also modified in place).
    """
    root = data_root.rstrip('/') + '/'
    cfg.work_dir = work_dir
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = 10**9
    cfg.default_hooks.checkpoint.interval = ckpt_interval
    cfg.default_hooks.checkpoint.max_keep_ckpts = 10
    cfg.default_hooks.logger.interval = 1
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    # Visualizers are global singletons by name: a second runner in the same process would
    # otherwise reuse the first one's save_dir.
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex[:8]}'
    loaders = [cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader]
    for loader in loaders:
        loader.num_workers = 0
        loader.persistent_workers = False
    cfg.train_dataloader.batch_size = batch_size
    sampler = cfg.train_dataloader.sampler
    if sampler.get('type') == 'GroupMultiSourceSampler':
        sampler.batch_size = batch_size
        sampler.source_ratio = [batch_size // 2, batch_size - batch_size // 2]
    datasets = cfg.train_dataloader.dataset.get('datasets', [cfg.train_dataloader.dataset])
    for ds in [*datasets, cfg.val_dataloader.dataset, cfg.test_dataloader.dataset]:
        ds.data_root = root
    for ev in (cfg.val_evaluator, cfg.test_evaluator):
        ev.ann_file = root + 'annotations/instances_val.json'
    return cfg


def hook_runner(model, work_dir: str, it: int = 0, vis_dir: str = None,
                max_iters: int = 1000000):
    """Enough of an mmengine ``Runner`` to drive a hook by hand: ``model``, ``iter``,
    ``max_iters``,
    ``seed`` 0, ``work_dir``, ``build_dataloader``, and a real visualizer (local backend
    saving under ``vis_dir``, default ``<work_dir>/vis``), message hub and logger, each
    under a fresh name."""
    from unittest.mock import MagicMock

    from mmengine.logging import MessageHub, MMLogger
    from mmengine.runner import Runner
    from mmengine.visualization import Visualizer
    runner = MagicMock()
    runner.model = model
    runner.iter = it
    runner.max_iters = max_iters
    runner.seed = 0
    runner.work_dir = work_dir
    runner.build_dataloader = Runner.build_dataloader
    name = uuid.uuid4().hex
    runner.visualizer = Visualizer(name=f'hook_{name}',
                                   vis_backends=[dict(type='LocalVisBackend')],
                                   save_dir=vis_dir or f'{work_dir}/vis')
    runner.message_hub = MessageHub.get_instance(f'hook_{name}')
    runner.logger = MMLogger.get_instance(f'hook_{name}')
    return runner
