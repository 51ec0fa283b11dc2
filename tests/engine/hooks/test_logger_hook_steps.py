"""Validation metrics reach TensorBoard at the iteration they were measured at.

mmengine's ``LoggerHook`` defaults to ``log_metric_by_epoch=True``, which on an
``IterBasedTrainLoop`` logs every validation at step ``runner.epoch`` = 0: all the
validations of a long run pile up at x = 0. Every mmssis config is iteration-based and its
runtime base (``configs/_base_/demo_runtime.py``) sets ``log_metric_by_epoch=False``.
"""
import glob
import os.path as osp
import time

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from mmssis.testing.tiny_run import DEMO_SUP_CONFIG, shrink_for_test
from mmssis.utils import adapt_cfg_to_machine

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def _event_scalars(work_dir: str) -> dict:
    """``{tag: [step, ...]}`` of every TensorBoard event file under ``work_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    files = glob.glob(osp.join(work_dir, '**', 'events.out.tfevents.*'), recursive=True)
    assert files, f'no TensorBoard event file under {work_dir}'
    steps = {}
    for path in files:
        acc = EventAccumulator(path, size_guidance={'scalars': 0})
        acc.Reload()
        for tag in acc.Tags()['scalars']:
            steps.setdefault(tag, []).extend(e.step for e in acc.Scalars(tag))
    return {tag: sorted(s) for tag, s in steps.items()}


def test_shipped_runtime_logs_metrics_by_iteration():
    cfg = Config.fromfile(osp.join(REPO, DEMO_SUP_CONFIG))
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.default_hooks.logger.log_metric_by_epoch is False


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_validation_scalars_sit_at_their_iterations_in_tensorboard(tiny_demo, tmp_path):
    work = str(tmp_path / 'work')
    cfg = Config.fromfile(osp.join(REPO, DEMO_SUP_CONFIG))
    shrink_for_test(cfg, tiny_demo.root, work, max_iters=4, ckpt_interval=10**9)
    cfg.train_cfg.val_interval = 2  # validations after iterations 2 and 4
    cfg.model.backbone.pretrained = False
    # An untrained model: few proposals and detections keep the 2 validations quick.
    cfg.model.test_cfg.rpn.update(nms_pre=100, max_per_img=50)
    cfg.model.test_cfg.rcnn.max_per_img = 10
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook', draw=False)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend'),
                                   dict(type='TensorboardVisBackend')]
    start = time.time()
    runner = Runner.from_cfg(adapt_cfg_to_machine(cfg))
    runner.train()
    runner.visualizer.close()  # flush the event file
    elapsed = time.time() - start

    steps = _event_scalars(work)
    val_tags = [t for t in steps if t.startswith('coco/')]
    assert 'coco/segm_mAP' in val_tags and 'coco/bbox_mAP' in val_tags, sorted(steps)
    for tag in val_tags:
        assert steps[tag] == [2, 4], (tag, steps[tag])
    # Training scalars stay at their own iterations (1..4, logged every iteration).
    assert steps['loss'] == [1, 2, 3, 4], steps['loss']
    assert elapsed < 120, f'took {elapsed:.0f} s'
