"""Structural distillation geometry through the shipped stage-1 pipelines.

The datasets are built from the configs users train with (demo, COCO LSJ, Cityscapes), on
a tiny demo data set; the samples are whatever their random flip / resize / crop produce.
A *perfect student* -- a detector feature map equal to SAM's own token map seen in the
view -- must give a loss of ~0, and the same map mirrored must not. SAM is a tiny random
segment-anything model whose decoder image tokens are made prompt-independent (the image
embedding itself), so that one feature map can match every query row.
"""
import os

import numpy as np
import pytest
import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

from mmssis.demo import DEMO_CLASSES
from mmssis.models.losses import SamStructuralDistiller
from mmssis.structures import MissingHomographyError, project_masks, sample_homography
from mmssis.registry import DATASETS
from mmssis.sam import SamModelBackend
from mmssis.testing import build_tiny_sam

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
STAGE1_CONFIGS = {
    'demo': 'configs/demo/s4m-distill_mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py',
    'coco': 'configs/s4m/s4m-distill_mask2former_r50_368k_sup-0.01-coco.py',
    'cityscapes': 'configs/s4m/s4m-distill_mask2former_r50_90k_sup-0.1-cityscapes.py',
}


class PromptFreeTokens(SamModelBackend):
    """Tiny SAM whose decoder image tokens are the image embedding for every prompt."""

    def decoder_image_tokens(self, emb, points, point_labels=None, boxes=None):
        n = points.shape[0]
        return emb.embedding.to(self.device).expand(n, -1, -1, -1).clone()


def _dataset(name, tiny_demo):
    cfg = Config.fromfile(os.path.join(REPO, STAGE1_CONFIGS[name]))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.update(data_root=tiny_demo.root + '/', ann_file='annotations/instances_train.json',
                  data_prefix=dict(img='images/'), metainfo=dict(classes=DEMO_CLASSES))
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdet')):
        return DATASETS.build(ds_cfg), cfg


def _views(dataset, want_flip, count=40):
    """Samples of the dataset whose random view is (not) flipped and rescaled."""
    import random
    np.random.seed(0)  # mmcv's random transforms draw from numpy's and python's generators
    random.seed(0)
    for i in range(count):
        item = dataset[i % len(dataset)]
        meta = item['data_samples'].metainfo
        scaled = tuple(meta['img_shape'][:2]) != tuple(meta['ori_shape'][:2])
        if bool(meta['flip']) == want_flip and scaled and len(item['data_samples'].gt_instances):
            return item
    pytest.fail(f'no {"flipped" if want_flip else "unflipped"} rescaled view in {count} draws')


def _perfect_student(backend, sample, image, stride=1):
    """Feature map (1, C, Hpad/stride, Wpad/stride) equal to SAM's token of each pixel."""
    emb = backend.encode(image)
    c, gh, gw = emb.embedding.shape[1:]
    ori_h, ori_w = emb.original_size
    in_h, in_w = emb.input_size
    ys = ((torch.arange(ori_h) + 0.5) * in_h / ori_h * gh / backend.image_size).long()
    xs = ((torch.arange(ori_w) + 0.5) * in_w / ori_w * gw / backend.image_size).long()
    orig = emb.embedding[0][:, ys.clamp(max=gh - 1)][:, :, xs.clamp(max=gw - 1)]  # (C, H, W)
    img_h, img_w = sample.metainfo['img_shape'][:2]
    view = project_masks(orig, sample_homography(sample), (img_h, img_w), mode='nearest')
    pad_h, pad_w = sample.metainfo['batch_input_shape'][:2]
    feat = view.new_zeros((1, c, pad_h, pad_w))
    feat[0, :, :img_h, :img_w] = view
    return feat[..., ::stride, ::stride] if stride > 1 else feat


def _mirror(feat, sample):
    img_w = sample.metainfo['img_shape'][1]
    out = feat.clone()
    out[..., :img_w] = torch.flip(feat[..., :img_w], dims=[-1])
    return out


def _collate(item):
    pre = DetDataPreprocessor(mean=[0, 0, 0], std=[1, 1, 1], bgr_to_rgb=True,
                              pad_size_divisor=32)
    data = pre(pseudo_collate([item]), training=True)
    return data['inputs'], data['data_samples'], pre


@pytest.mark.parametrize('name', ['demo', 'coco', 'cityscapes'])
@pytest.mark.parametrize('flip', [True, False])
def test_perfect_student_matches_sam_on_real_pipeline_views(name, flip, tiny_demo):
    import mmcv
    dataset, _ = _dataset(name, tiny_demo)
    item = _views(dataset, flip)
    _, samples, _ = _collate(item)
    sample = samples[0]
    assert sample.metainfo.get('homography_matrix') is not None, 'pipeline must pack it'
    backend = PromptFreeTokens(build_tiny_sam(img_size=64, dim=16))
    distiller = SamStructuralDistiller(backend, num_inside=16, num_uniform=16,
                                       sam_input='original', cache_targets=False)
    image = mmcv.imread(sample.img_path, channel_order='rgb')
    feat = _perfect_student(backend, sample, image)
    perfect = distiller.loss(feat, [sample])['loss_sam_distill'].item()
    mirrored = distiller.loss(_mirror(feat, sample), [sample])['loss_sam_distill'].item()
    assert perfect < 1e-8
    assert mirrored > 1e-4 and mirrored > 1e6 * max(perfect, 1e-15)
    # The bug this guards against: treating the view as the original image.
    as_original = sample.clone()
    as_original.set_metainfo(dict(homography_matrix=np.eye(3, dtype=np.float32)))
    assert distiller.loss(feat, [as_original])['loss_sam_distill'].item() > 1e-3


@pytest.mark.parametrize('name', ['coco', 'cityscapes'])
def test_sam_on_the_view_perfect_student(name, tiny_demo):
    """``sam_input='view'`` (the paper configs): SAM encodes the detector's view."""
    dataset, _ = _dataset(name, tiny_demo)
    item = _views(dataset, True)
    inputs, samples, pre = _collate(item)
    sample = samples[0]
    backend = PromptFreeTokens(build_tiny_sam(img_size=64, dim=16))
    distiller = SamStructuralDistiller(backend, num_inside=16, num_uniform=16,
                                       sam_input='view', cache_targets=False)
    from mmssis.models.utils import view_normalization
    from mmssis.structures import denormalize_views
    view = denormalize_views(inputs, [s.metainfo['img_shape'] for s in samples],
                             **view_normalization(pre))[0]
    # SAM's image is the view itself: the perfect student is the token map in view pixels.
    ident = sample.clone()
    ident.set_metainfo(dict(homography_matrix=np.eye(3, dtype=np.float32)))
    feat = _perfect_student(backend, ident, view)
    perfect = distiller.loss(feat, [sample], inputs, pre)['loss_sam_distill'].item()
    mirrored = distiller.loss(_mirror(feat, sample), [sample], inputs,
                              pre)['loss_sam_distill'].item()
    assert perfect < 1e-8
    assert mirrored > 1e-4 and mirrored > 1e6 * max(perfect, 1e-15)
    # New query points every step, as the official code draws them.
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    hub.update_info('iter', 5)
    q1 = distiller.sam_targets(sample, view)[1]
    assert torch.equal(q1, distiller.sam_targets(sample, view)[1])  # a function of the step
    hub.update_info('iter', 6)
    q2 = distiller.sam_targets(sample, view)[1]
    hub.update_info('iter', 0)
    assert not torch.equal(q1, q2)


@pytest.mark.parametrize('name', ['demo', 'coco', 'cityscapes'])
def test_transformed_view_without_homography_is_an_error(name, tiny_demo):
    dataset, _ = _dataset(name, tiny_demo)
    item = _views(dataset, True)
    _, samples, _ = _collate(item)
    sample = samples[0].clone()
    meta = dict(sample.metainfo)
    meta.pop('homography_matrix')
    stripped = sample.__class__(metainfo=meta)
    stripped.gt_instances = sample.gt_instances
    backend = PromptFreeTokens(build_tiny_sam(img_size=64, dim=16))
    distiller = SamStructuralDistiller(backend, num_inside=4, num_uniform=4,
                                       sam_input='original', cache_targets=False)
    feat = torch.zeros((1, 8, *meta['batch_input_shape']))
    with pytest.raises(MissingHomographyError, match='homography_matrix'):
        distiller.loss(feat, [stripped])


def test_untransformed_or_resized_sample_needs_no_homography():
    from mmdet.structures import DetDataSample
    s = DetDataSample(metainfo=dict(img_shape=(50, 80), ori_shape=(100, 160),
                                    scale_factor=(0.5, 0.5), flip=False))
    torch.testing.assert_close(sample_homography(s),
                               torch.diag(torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64)))
    same = DetDataSample(metainfo=dict(img_shape=(100, 160), ori_shape=(100, 160)))
    torch.testing.assert_close(sample_homography(same), torch.eye(3, dtype=torch.float64))
    for meta in (dict(img_shape=(100, 160), ori_shape=(100, 160), flip=True),
                 dict(img_shape=(64, 64), ori_shape=(100, 160), scale_factor=(1.0, 1.0))):
        with pytest.raises(MissingHomographyError):
            sample_homography(DetDataSample(metainfo=meta))
