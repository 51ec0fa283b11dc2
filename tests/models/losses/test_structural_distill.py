"""SAM structural distillation: geometry, similarity rows, falling loss, detector wiring."""
import copy

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope

from mmssis.models.losses import (SamStructuralDistiller, sample_query_cells,
                                  self_similarity_rows)
from mmssis.registry import MODELS
from mmssis.sam import SamModelBackend
from mmssis.testing import build_tiny_sam, make_sample, tiny_mask_rcnn_cfg


def test_token_centres_frame_and_padding():
    # 100x50 image into a 64-px SAM: resized to 64x32, grid 4x4 of 16-px cells.
    backend = SamModelBackend(build_tiny_sam(img_size=64))
    emb = backend.encode(np.zeros((100, 50, 3), np.uint8))
    assert emb.input_size == (64, 32)
    centres, valid = backend.token_centres(emb)
    assert valid.reshape(4, 4)[:, :2].all() and not valid.reshape(4, 4)[:, 2:].any()
    # Cell (0, 0) centre at input (8, 8) -> original (8 / 0.64, 8 / 0.64) = (12.5, 12.5).
    torch.testing.assert_close(centres[0], torch.tensor([12.5, 12.5]))


def test_similarity_rows_and_query_sampling():
    feat = torch.randn(8, 10)
    rows = self_similarity_rows(feat, torch.tensor([0, 3]))
    torch.testing.assert_close(rows[:, [0, 3]].diagonal(), torch.ones(2))
    assert rows.abs().max() <= 1 + 1e-5
    fg = torch.zeros(10, dtype=torch.bool)
    fg[2] = True
    q = sample_query_cells(fg, torch.ones(10, dtype=torch.bool), 5, 3,
                           torch.Generator().manual_seed(0))
    assert q.shape == (8, ) and (q[:5] == 2).all()


@pytest.fixture()
def labelled_samples(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = str(tmp_path / 'a.png')
    mmcv.imwrite(img, path)
    flip = np.array([[-1, 0, 64], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    samples = [make_sample((64, 64)), make_sample((64, 64), homography=flip)]
    for s in samples:
        s.set_metainfo(dict(img_path=path))
    return samples


def _distiller(**kw):
    backend = SamModelBackend(build_tiny_sam(img_size=64))
    return SamStructuralDistiller(backend, num_inside=4, num_uniform=4, **kw)


def test_loss_falls_when_features_are_trained(labelled_samples):
    distiller = _distiller()
    torch.manual_seed(0)
    feat = torch.randn(2, 16, 16, 16, requires_grad=True)
    opt = torch.optim.Adam([feat], lr=0.05)
    first = None
    for _ in range(30):
        loss = distiller.loss(feat, labelled_samples)['loss_sam_distill']
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    # Both samples share the image: SAM ran once, every later call hit the cache.
    assert distiller.misses == 1 and distiller.hit_rate > 0.9


def test_flip_view_uses_same_targets_mirrored(labelled_samples):
    distiller = _distiller()
    feat = torch.randn(1, 8, 16, 16)
    flipped = torch.flip(feat, dims=[3])
    a = distiller.loss(feat, labelled_samples[:1])['loss_sam_distill']
    b = distiller.loss(flipped, labelled_samples[1:])['loss_sam_distill']
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_distill_mask_rcnn_adds_loss_and_keeps_plain_state_dict(labelled_samples):
    cfg = tiny_mask_rcnn_cfg()
    plain_cfg = copy.deepcopy(cfg)
    cfg['type'] = 'mmssis.SamDistillMaskRCNN'
    cfg['distill'] = _distiller()
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(ConfigDict(cfg))
        plain = MODELS.build(ConfigDict(plain_cfg))
    assert set(model.state_dict()) == set(plain.state_dict())
    model.train()
    losses = model.loss(torch.randn(2, 3, 64, 64), labelled_samples)
    assert 'loss_sam_distill' in losses and losses['loss_sam_distill'] > 0
    losses['loss_sam_distill'].backward()
    assert model.neck.fpn_convs[0].conv.weight.grad is not None
