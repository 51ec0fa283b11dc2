import copy

import numpy as np
import pytest
import torch

from mmssis.registry import MODELS
from mmssis.sam import ImageEmbedding, SamBackend, SamModelBackend
from mmssis.structures import masks_to_boxes
from mmssis.testing import build_echo_sam, build_tiny_sam


def test_encode_embedding_geometry(tiny_backend, image):
    emb = tiny_backend.encode(image)
    assert isinstance(emb, ImageEmbedding)
    assert emb.embedding.shape == (1, 32, 8, 8)
    assert emb.original_size == (300, 500)
    assert emb.input_size == (77, 128)  # ResizeLongestSide(128) of 300x500
    assert emb.nbytes == 32 * 8 * 8 * 4


@pytest.mark.parametrize('multimask,m', [(True, 3), (False, 1)])
def test_decode_shapes_non_square(tiny_backend, image, multimask, m):
    emb = tiny_backend.encode(image)
    boxes = torch.tensor([[10., 20., 200., 250.], [300., 0., 499., 299.]])
    points = torch.tensor([[[50., 60.]], [[400., 100.]]])
    masks, iou = tiny_backend.decode(emb, boxes=boxes, points=points, multimask=multimask)
    assert masks.shape == (2, m, 300, 500) and masks.dtype == torch.bool
    assert iou.shape == (2, m)
    logits, _ = tiny_backend.decode(emb, points=points, multimask=multimask, return_logits=True)
    assert logits.shape == (2, m, 300, 500) and logits.dtype == torch.float32


def test_single_decoder_call_for_all_prompts(tiny_backend, image, count_calls):
    emb = tiny_backend.encode(image)
    counter = count_calls(tiny_backend.model.mask_decoder)
    n = 7
    boxes = torch.tensor([[10., 10., 100., 100.]]).repeat(n, 1)
    masks, iou = tiny_backend.decode(emb, boxes=boxes, points=torch.rand(n, 3, 2) * 290)
    assert counter.calls == 1
    assert masks.shape[0] == n


def test_max_prompts_per_call_chunks(image, count_calls):
    one = SamModelBackend(build_tiny_sam())
    chunked = SamModelBackend(build_tiny_sam(), max_prompts_per_call=2)
    counter = count_calls(chunked.model.mask_decoder)
    emb = one.encode(image)
    boxes = torch.rand(5, 2).mul(200).repeat(1, 2) + torch.tensor([0., 0., 50., 60.])
    pts = torch.rand(5, 2, 2) * 250
    a, ia = one.decode(emb, boxes=boxes, points=pts, return_logits=True)
    b, ib = chunked.decode(emb, boxes=boxes, points=pts, return_logits=True)
    assert counter.calls == 3
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ia, ib, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one.decoder_image_tokens(emb, pts, boxes=boxes),
                               chunked.decoder_image_tokens(emb, pts, boxes=boxes),
                               atol=1e-4, rtol=1e-4)


def test_decoder_dtype_bfloat16_close_to_float32(image):
    full = SamModelBackend(build_tiny_sam())
    half = SamModelBackend(build_tiny_sam(), decoder_dtype='bfloat16')
    emb = full.encode(image)
    boxes = torch.tensor([[10., 20., 200., 250.], [300., 0., 499., 299.], [0., 0., 50., 60.]])
    a, ia = full.predict_low_res(emb, boxes=boxes)
    b, ib = half.predict_low_res(emb, boxes=boxes)
    # returned as float32 whatever the decoder ran in, same shapes
    assert b.dtype == ib.dtype == torch.float32 and b.shape == a.shape and ib.shape == ia.shape
    assert not torch.equal(a, b)  # it did run in reduced precision
    # bfloat16 keeps ~3 significant digits: logits agree to a few % of their spread
    assert (a - b).abs().max() < 0.05 * a.std() + 1e-3
    torch.testing.assert_close(ia, ib, atol=0.02, rtol=0.02)
    with pytest.raises(ValueError, match='decoder_dtype'):
        SamModelBackend(build_tiny_sam(), decoder_dtype='int8')


def test_batched_equals_separate(tiny_backend, image):
    emb = tiny_backend.encode(image)
    boxes = torch.tensor([[10., 20., 200., 250.], [300., 0., 499., 299.], [0., 0., 50., 60.]])
    batched, iou_b = tiny_backend.decode(emb, boxes=boxes, return_logits=True)
    for i in range(3):
        single, iou_s = tiny_backend.decode(emb, boxes=boxes[i:i + 1], return_logits=True)
        torch.testing.assert_close(single[0], batched[i], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(iou_s[0], iou_b[i], atol=1e-5, rtol=1e-5)


def test_zero_prompts(tiny_backend, image):
    emb = tiny_backend.encode(image)
    masks, iou = tiny_backend.decode(emb, boxes=torch.zeros((0, 4)))
    assert masks.shape == (0, 3, 300, 500) and iou.shape == (0, 3)
    tokens = tiny_backend.decoder_image_tokens(emb, torch.zeros((0, 3, 2)))
    assert tokens.shape == (0, 32, 8, 8)


def test_prompt_validation(tiny_backend, image):
    emb = tiny_backend.encode(image)
    with pytest.raises(ValueError, match='at least one prompt'):
        tiny_backend.decode(emb)
    with pytest.raises(ValueError, match=r'\(N, 4\)'):
        tiny_backend.decode(emb, boxes=torch.zeros(3))
    with pytest.raises(ValueError, match='point sets'):
        tiny_backend.decode(emb, boxes=torch.zeros((2, 4)), points=torch.zeros((3, 1, 2)))


def test_requires_box_rejects_points_only(image):
    backend = SamModelBackend(build_tiny_sam(), requires_box=True)
    emb = backend.encode(image)
    with pytest.raises(ValueError, match='box prompts'):
        backend.decode(emb, points=torch.zeros((1, 1, 2)))
    masks, _ = backend.decode(emb, boxes=torch.tensor([[0., 0., 10., 10.]]),
                              points=torch.zeros((1, 1, 2)))
    assert masks.shape == (1, 3, 300, 500)


@pytest.mark.parametrize('size', [(300, 500), (480, 200), (256, 256)])
def test_box_frame_mapping_with_echo_sam(size):
    """The echo SAM draws the box it receives in the input frame; after the
    backend's round trip the mask must cover the same box in the original frame."""
    backend = SamModelBackend(build_echo_sam(img_size=256))
    h, w = size
    emb = backend.encode(np.zeros((h, w, 3), np.uint8))
    boxes = torch.tensor([[0.2 * w, 0.1 * h, 0.6 * w, 0.7 * h],
                          [0.5 * w, 0.5 * h, 0.9 * w, 0.95 * h]]).round()
    masks, iou = backend.decode(emb, boxes=boxes, multimask=True)
    assert torch.equal(iou[0], torch.tensor([0.5, 0.9, 0.7]))
    assert not masks[:, [0, 2]].any()  # only the "best" slot carries the drawing
    got = masks_to_boxes(masks[:, 1])
    assert (got - boxes).abs().max() <= 1.5, (got, boxes)


def test_point_frame_mapping_with_echo_sam():
    backend = SamModelBackend(build_echo_sam(img_size=256, radius=2))
    emb = backend.encode(np.zeros((300, 500, 3), np.uint8))
    pts = torch.tensor([[[100., 50.]], [[400., 250.]]])
    masks, _ = backend.decode(emb, points=pts, multimask=False)
    for i in range(2):
        ys, xs = torch.nonzero(masks[i, 0], as_tuple=True)
        cx, cy = xs.float().mean(), ys.float().mean()
        assert abs(cx - pts[i, 0, 0]) <= 2.5 and abs(cy - pts[i, 0, 1]) <= 2.5
        assert masks[i, 0, int(pts[i, 0, 1]), int(pts[i, 0, 0])]


def test_decoder_image_tokens_are_transformer_keys(tiny_backend, image):
    emb = tiny_backend.encode(image)
    pts = torch.tensor([[[50., 60.], [70., 80.]], [[400., 100.], [410., 120.]]])
    captured = {}

    def hook(_m, _i, out):
        captured['keys'] = out[1]

    handle = tiny_backend.model.mask_decoder.transformer.register_forward_hook(hook)
    tokens = tiny_backend.decoder_image_tokens(emb, pts)
    handle.remove()
    assert tokens.shape == (2, 32, 8, 8)
    keys = captured['keys']  # (N, h*w, C)
    torch.testing.assert_close(tokens[1, :, 2, 3], keys[1, 2 * 8 + 3])
    # prompt dependent: different prompts give different tokens
    assert not torch.allclose(tokens[0], tokens[1])


def test_decoder_image_tokens_stop_after_the_transformer(tiny_backend, image):
    """The mask upscaling never runs for tokens, and the tokens are those of a full call."""
    emb = tiny_backend.encode(image)
    pts = torch.tensor([[[50., 60.]], [[400., 100.]], [[200., 300.]]])
    decoder = tiny_backend.model.mask_decoder
    full = {}

    def keep(_m, _i, out):
        full['keys'] = out[1]

    handle = decoder.transformer.register_forward_hook(keep)
    tiny_backend.predict_low_res(emb, points=pts, point_labels=torch.ones(3, 1))
    handle.remove()
    calls = []
    handle = decoder.output_upscaling.register_forward_hook(lambda *a: calls.append(1))
    tokens = tiny_backend.decoder_image_tokens(emb, pts)
    handle.remove()
    assert calls == []
    h, w = tokens.shape[-2:]
    torch.testing.assert_close(tokens, full['keys'].transpose(1, 2).reshape(3, -1, h, w),
                               rtol=0, atol=0)
    # the hook is gone: a later full decoder call runs to the end
    low_res, _ = tiny_backend.predict_low_res(emb, points=pts, point_labels=torch.ones(3, 1))
    assert low_res.shape[0] == 3


def test_sam_frozen_and_outside_state_dict(tiny_backend):
    assert not any(p.requires_grad for p in tiny_backend.model.parameters())
    assert not tiny_backend.model.training
    assert not isinstance(tiny_backend, torch.nn.Module)

    class Detector(torch.nn.Module):
        def __init__(self, sam):
            super().__init__()
            self.head = torch.nn.Linear(2, 2)
            self.sam = sam

    det = Detector(tiny_backend)
    assert set(det.state_dict()) == {'head.weight', 'head.bias'}
    assert len(list(det.parameters())) == 2
    ema = copy.deepcopy(det)
    assert ema.sam is tiny_backend  # frozen SAM shared, not duplicated


def test_image_formats(tiny_backend, image):
    ref = tiny_backend.encode(image).embedding
    chw = torch.from_numpy(image).permute(2, 0, 1)
    torch.testing.assert_close(tiny_backend.encode(chw).embedding, ref)
    bgr = np.ascontiguousarray(image[..., ::-1])
    torch.testing.assert_close(tiny_backend.encode(bgr, channel_order='bgr').embedding, ref)
    with pytest.raises(ValueError):
        tiny_backend.encode(image[..., 0])


def test_registered_and_abstract():
    assert MODELS.get('SamModelBackend') is SamModelBackend
    for name in ('SegmentAnythingBackend', 'LiteMedSamBackend', 'Sam2Backend',
                 'SamMaskRefiner'):
        assert MODELS.get(name) is not None, name
    with pytest.raises(TypeError):
        SamBackend()
