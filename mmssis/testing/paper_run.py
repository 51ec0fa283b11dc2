"""Run the paper configs (COCO / Cityscapes S4M) for a few CPU iterations on tiny data.

What changes, and only this: the detector becomes a tiny Mask2Former (or Mask R-CNN) of the
same type, every SAM backend becomes a random SAM 2.1 Hiera-T at a small input loaded from a
saved checkpoint, the data root points at a tiny demo set, the image size (LSJ crop, batch
pad) shrinks with the ARP area threshold scaled by the same factor, AMP becomes plain
fp32, and the schedule is a few iterations. Every S4M part keeps its paper setting.
"""
import copy
import os
import uuid
from typing import Any, Dict, Optional

from mmengine.config import Config, ConfigDict

from .semi_batch import tiny_mask2former_cfg, tiny_mask_rcnn_cfg

__all__ = ['save_tiny_sam2', 'swap_sam_backends', 'shrink_paper_config']

SAM_TYPES = ('Sam2Backend', 'SegmentAnythingBackend', 'LiteMedSamBackend')
TINY_SAM2_CONFIG = 'configs/sam2.1/sam2.1_hiera_t.yaml'


def save_tiny_sam2(path: str, image_size: int = 128, seed: int = 0) -> dict:
    """Save a random SAM 2.1 Hiera-T state dict to ``path``; return its backend config."""
    import torch

    from mmssis.sam.sam2_backend import build_sam2_network
    if not os.path.isfile(path):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = build_sam2_network(TINY_SAM2_CONFIG, image_size)
        torch.save({'model': net.state_dict()}, path)
    return dict(type='mmssis.Sam2Backend', config=TINY_SAM2_CONFIG, checkpoint=path,
                image_size=image_size)


def swap_sam_backends(node: Any, backend: dict) -> int:
    """Replace, in place, every SAM backend config under ``node`` by ``backend``.

    Returns:
        How many backends were replaced.
    """
    count = 0
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, dict) and str(value.get('type', '')).split('.')[-1] in SAM_TYPES:
            node[key] = ConfigDict(copy.deepcopy(backend))
            count += 1
        elif isinstance(value, (dict, list)):
            count += swap_sam_backends(value, backend)
    return count


def _tiny_detector(detector: dict, num_classes: int) -> dict:
    """A tiny detector of the same family, keeping the mmssis type and its ``distill``."""
    family = 'mask2former' if 'panoptic_head' in detector else 'mask_rcnn'
    tiny = tiny_mask2former_cfg(num_classes) if family == 'mask2former' \
        else tiny_mask_rcnn_cfg(num_classes)
    tiny['type'] = detector['type']
    if 'data_preprocessor' in detector:  # the config's own (LSJ batch pad included)
        tiny['data_preprocessor'] = copy.deepcopy(detector['data_preprocessor'])
    if 'distill' in detector:
        tiny['distill'] = detector['distill']
    return tiny


def _shrink_pipeline(pipeline: list, size: int) -> None:
    for t in pipeline:
        kind = t.get('type')
        if kind == 'RandomResize':
            t['scale'] = (size, size)
        elif kind == 'RandomCrop':
            t['crop_size'] = (size, size) if t['crop_size'][0] == t['crop_size'][1] \
                else (size, size // 2)
        elif kind == 'RandomChoiceResize':
            t['scales'] = [(4 * size, int(size * s / 1024)) for _, s in t['scales']]
        elif kind == 'MultiBranch':
            for branch in t.values():
                if isinstance(branch, list) and all(isinstance(b, dict) for b in branch):
                    _shrink_pipeline(branch, size)


def shrink_paper_config(cfg: Config, data_root: Optional[str], work_dir: str,
                        sam_backend: dict, classes, max_iters: int = 2, image_size: int = 256,
                        batch_size: int = 4, semi_overrides: Optional[Dict] = None) -> Config:
    """Make a paper config (stage 1 or stage 2) train ``max_iters`` CPU iterations.

    Args:
        cfg: A ``configs/s4m/*.py`` config.
        data_root: A tiny demo set (``generate_demo_dataset``); ``None`` keeps the config's
            own data sets (e.g. the custom-data configs pointed at a tiny set).
        work_dir: Logs and checkpoints.
        sam_backend: The SAM backend config every SAM in ``cfg`` is replaced with.
        classes: Class names of the tiny data.
        max_iters: Iterations.
        image_size: Side of the LSJ crop / batch pad that replaces 1024.
        batch_size: Images per iteration (stage 2: half labelled, half unlabelled).
        semi_overrides: Extra ``semi_train_cfg`` values (e.g. a score threshold a random
            teacher can pass).

    Returns:
        The modified config (also modified in place).
    """
    scale = (image_size / 1024) ** 2
    cfg.work_dir = work_dir
    model = cfg.model
    num = len(classes)
    if model.get('detector') is not None:
        model.detector = ConfigDict(_tiny_detector(model.detector, num))
        model.data_preprocessor.data_preprocessor = model.detector.data_preprocessor
        semi = model.semi_train_cfg
        if semi.get('instance_mixer'):
            semi.instance_mixer.min_area = semi.instance_mixer.min_area * scale
        semi.update(semi_overrides or {})
    else:
        cfg.model = ConfigDict(_tiny_detector(model, num))
    swap_sam_backends(cfg.model, sam_backend)
    cfg.optim_wrapper.type = 'OptimWrapper'  # AMP needs a GPU
    cfg.optim_wrapper.pop('loss_scale', None)
    cfg.optim_wrapper.pop('dtype', None)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10**9)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=max_iters)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False, window_size=1)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex[:8]}'
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator', 'test_dataloader', 'test_cfg',
                'test_evaluator'):
        cfg.pop(key, None)
    loader = cfg.train_dataloader
    loader.num_workers = 0
    loader.persistent_workers = False
    loader.batch_size = batch_size
    if loader.sampler.get('type') == 'GroupMultiSourceSampler':
        loader.sampler.batch_size = batch_size
        loader.sampler.source_ratio = [batch_size // 2, batch_size - batch_size // 2]
    datasets = loader.dataset.get('datasets', [loader.dataset])
    for ds, ann in zip(datasets, ('annotations/instances_train.json',
                                  'annotations/instances_train.1@8-unlabeled.json')):
        if data_root is not None:
            ds.update(data_root=data_root.rstrip('/') + '/', ann_file=ann,
                      data_prefix=dict(img='images/'), metainfo=dict(classes=tuple(classes)))
        _shrink_pipeline(ds.pipeline, image_size)
    # Padding of the LSJ batch (BatchFixedSizePad) follows the crop.
    det = cfg.model.get('detector', cfg.model)
    for aug in det.data_preprocessor.get('batch_augments') or []:
        if aug.get('type') == 'BatchFixedSizePad':
            aug['size'] = (image_size, image_size)
    return cfg
