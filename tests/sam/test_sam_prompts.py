import torch

from mmssis.sam import sample_points_from_logits
from mmssis.structures import boxes_to_masks, masks_to_boxes


def _instance_logits(h=40, w=60):
    """Two instances: a rectangle and an L-shape, with a logit peak inside each."""
    logits = torch.full((2, h, w), -5.0)
    logits[0, 5:15, 10:30] = 1.0
    logits[0, 8, 12] = 4.0  # peak
    logits[1, 20:35, 40:45] = 0.5
    logits[1, 30:35, 45:58] = 0.5
    logits[1, 33, 50] = 3.0  # peak
    return logits


def test_points_inside_instances_and_distinct():
    logits = _instance_logits()
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        pts, labels = sample_points_from_logits(logits, 3, generator=g)
        assert pts.shape == (2, 3, 2) and labels.shape == (2, 3)
        assert (labels == 1).all()
        for i in range(2):
            xs, ys = pts[i, :, 0].long(), pts[i, :, 1].long()
            assert (logits[i, ys, xs] > 0).all()
            assert len({(int(x), int(y)) for x, y in zip(xs, ys)}) == 3  # no replacement


def test_sampling_follows_softmax_of_logits():
    """Draws K=1 many times: empirical frequencies match softmax over the
    foreground, and the highest-logit pixel is the most frequent one."""
    logits = torch.full((1, 8, 8), -3.0)
    logits[0, 2:6, 2:6] = torch.linspace(0.1, 1.5, 16).reshape(4, 4)
    logits[0, 3, 4] = 3.0
    g = torch.Generator().manual_seed(1)
    n_draws = 4000
    batch = logits.expand(n_draws, 8, 8)  # independent draws in one call
    pts, _ = sample_points_from_logits(batch, 1, generator=g)
    idx = (pts[:, 0, 1] * 8 + pts[:, 0, 0]).long()
    freq = torch.bincount(idx, minlength=64).float() / n_draws
    fg = logits[0].flatten() > 0
    expected = torch.where(fg, torch.softmax(logits[0].flatten().masked_fill(~fg, -1e9), 0), 0.)
    assert freq[~fg].sum() == 0
    assert int(freq.argmax()) == 3 * 8 + 4
    assert (freq - expected).abs().max() < 0.03
    # K=3 without replacement: the peak is still included most often
    pts3, _ = sample_points_from_logits(batch, 3, generator=g)
    idx3 = (pts3[..., 1] * 8 + pts3[..., 0]).long().flatten()
    assert int(torch.bincount(idx3, minlength=64).argmax()) == 3 * 8 + 4


def test_seed_reproducible():
    logits = _instance_logits()
    a = sample_points_from_logits(logits, 3, generator=torch.Generator().manual_seed(7))
    b = sample_points_from_logits(logits, 3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_small_and_empty_instances():
    logits = torch.full((3, 20, 20), -2.0)
    logits[0, 4, 5] = 1.0  # single pixel: 1 point + 2 padding points
    boxes = torch.tensor([[0., 0., 1., 1.], [10., 12., 14., 16.], [0., 0., 0., 0.]])
    pts, labels = sample_points_from_logits(logits, 3, fallback_boxes=boxes,
                                            generator=torch.Generator().manual_seed(0))
    assert labels[0].tolist() == [1, -1, -1] and pts[0, 0].tolist() == [5.0, 4.0]
    # empty mask -> fallback box region
    assert (labels[1] == 1).all()
    assert ((pts[1, :, 0] >= 10) & (pts[1, :, 0] < 14)).all()
    assert ((pts[1, :, 1] >= 12) & (pts[1, :, 1] < 16)).all()
    # empty mask and degenerate box -> anywhere in the image
    assert (labels[2] == 1).all()
    empty, lab = sample_points_from_logits(torch.zeros((0, 5, 5)), 3)
    assert empty.shape == (0, 3, 2) and lab.shape == (0, 3)


def test_masks_boxes_roundtrip():
    boxes = torch.tensor([[2., 3., 10., 7.], [0., 0., 20., 15.]])
    masks = boxes_to_masks(boxes, (15, 20))
    assert masks[0].sum() == 8 * 4
    assert torch.equal(masks_to_boxes(masks), boxes)
    empty = torch.zeros((1, 15, 20), dtype=torch.bool)
    fb = torch.tensor([[1., 2., 3., 4.]])
    assert torch.equal(masks_to_boxes(empty, fallback=fb), fb)
    assert torch.equal(masks_to_boxes(empty), torch.zeros((1, 4)))
