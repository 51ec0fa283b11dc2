"""Log how good the teacher's (and SAM-refined) pseudo-masks are during training."""
from __future__ import annotations

from typing import Dict, Optional, Union

from mmengine.hooks import Hook

from mmssis.evaluation.pseudo_label_eval import evaluate_pseudo_labels
from mmssis.evaluation import format_quality_table
from mmssis.registry import HOOKS

DATA_BATCH = Optional[Union[dict, tuple, list]]


@HOOKS.register_module()
class PseudoLabelQualityHook(Hook):
    """Scores pseudo-labels on a labelled held-out slice treated as unlabelled.

    The images go through the detector's own pseudo-label path (teacher prediction ->
    score / mask filtering -> the model's SAM refiner, if any), and the pseudo-masks are
    matched to the GT masks (see :mod:`mmssis.evaluation.pseudo_label_quality`). Logged
    keys (``prefix='pseudo'``): ``pseudo/teacher_precision``, ``pseudo/teacher_recall``,
    ``pseudo/teacher_miou``, ``pseudo/teacher_best_iou``, the same with ``refined_`` when
    the model has a ``sam_refiner``, and ``pseudo/miou_gain``.

    After a validation epoch the values are written to the message hub as ``val/<key>``
    (where ``RuntimeInfoHook`` puts the evaluator's metrics, so ``LoggerHook``, which runs
    after this hook, prints them on the ``Iter(val)`` line and sends them to the
    visualizer) and added to the ``metrics`` dict (so e.g. ``CheckpointHook(save_best=
    'pseudo/refined_miou')`` can use them). With ``train_interval`` they are also computed
    every that many training iterations, logged as a table, written to the message hub
    as ``<key>`` and to the visualizer.

    Args:
        dataloader: Data loader config (or object) of images with GT masks; its pipeline
            must load masks (``LoadAnnotations(with_mask=True)``). None: the runner's
            validation loader.
        max_images: Images scored per evaluation (per rank); None for all.
        interval: Evaluate after every ``interval``-th validation epoch (0 disables).
        train_interval: Also evaluate every this many training iterations.
        iou_thr: IoU threshold of a match.
        class_aware: Only match pseudo-labels to GT of the same class.
        prefix: Key prefix.
    """

    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL): our keys join its metrics

    def __init__(self, dataloader: Union[dict, object, None] = None,
                 max_images: Optional[int] = 50, interval: int = 1,
                 train_interval: Optional[int] = None, iou_thr: float = 0.5,
                 class_aware: bool = True, prefix: str = 'pseudo') -> None:
        self._loader_cfg = dataloader
        self._loader = None if isinstance(dataloader, dict) else dataloader
        self.max_images = max_images
        self.interval = int(interval)
        self.train_interval = train_interval
        self.iou_thr = iou_thr
        self.class_aware = class_aware
        self.prefix = prefix
        self._val_epochs = 0

    def _dataloader(self, runner):
        if self._loader is None:
            if isinstance(self._loader_cfg, dict):
                self._loader = runner.build_dataloader(self._loader_cfg)
            else:
                self._loader = runner.val_loop.dataloader
        return self._loader

    def evaluate(self, runner) -> Dict[str, float]:
        """Runs the evaluation and returns ``{prefix/key: value}``."""
        metrics = evaluate_pseudo_labels(runner.model, self._dataloader(runner),
                                         max_images=self.max_images, iou_thr=self.iou_thr,
                                         class_aware=self.class_aware)
        runner.logger.info('pseudo-label quality (%s images):\n%s',
                           int(metrics['teacher_num_images']), format_quality_table(metrics))
        return {f'{self.prefix}/{k}': v for k, v in metrics.items()}

    @staticmethod
    def _publish(runner, metrics: Dict[str, float], key_prefix: str = '') -> None:
        for key, value in metrics.items():
            runner.message_hub.update_scalar(f'{key_prefix}{key}', value)

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if self.interval <= 0:
            return
        self._val_epochs += 1
        if self._val_epochs % self.interval:
            return
        values = self.evaluate(runner)
        self._publish(runner, values, key_prefix='val/')
        if metrics is not None:
            metrics.update(values)

    def after_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        if not self.train_interval or not self.every_n_train_iters(runner, self.train_interval):
            return
        values = self.evaluate(runner)
        self._publish(runner, values)
        runner.visualizer.add_scalars(values, step=runner.iter + 1)
