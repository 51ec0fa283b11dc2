"""Sam2Backend on a randomly initialised SAM 2.1 Hiera-T at a 256-px input (nothing downloads).

The weights go through the real loading path: a state dict saved from a random network is
loaded by checkpoint path with ``weights_only`` loading.
"""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmssis.registry import MODELS
from mmssis.sam import SamCheckpointError, SamModelBackend
from mmssis.sam.sam2_backend import Sam2Backend, build_sam2_network
from mmssis.testing import build_tiny_sam

CONFIG = 'configs/sam2.1/sam2.1_hiera_t.yaml'
SIZE = 256


@pytest.fixture(scope='module')
def sam2_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    net = build_sam2_network(CONFIG, SIZE)
    path = str(tmp_path_factory.mktemp('sam2') / 'sam2.1_hiera_tiny_256.pt')
    torch.save({'model': net.state_dict()}, path)  # the layout Meta publishes
    return path, net


@pytest.fixture(scope='module')
def backend(sam2_ckpt):
    return Sam2Backend(CONFIG, sam2_ckpt[0], image_size=SIZE)


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, (150, 250, 3), dtype=np.uint8)


class Calls:

    def __init__(self, module):
        self.n = 0
        self._h = module.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.n += 1

    def close(self):
        self._h.remove()


def test_loaded_weights_are_the_saved_ones(sam2_ckpt, backend):
    _, net = sam2_ckpt
    for (k, a), (k2, b) in zip(net.state_dict().items(), backend.model.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    assert backend.image_size == SIZE and not any(p.requires_grad
                                                  for p in backend.model.parameters())


def test_encode_once_and_embedding_geometry(backend, image):
    enc = Calls(backend.model.image_encoder)
    dec = Calls(backend.model.sam_mask_decoder)
    emb = backend.encode(image)
    boxes = torch.tensor([[10., 10., 90., 70.], [60., 30., 200., 140.], [0., 0., 250., 150.]])
    backend.decode(emb, boxes=boxes)
    backend.decode(emb, points=torch.tensor([[[40., 40.]], [[120., 80.]]]))
    enc.close()
    dec.close()
    assert enc.n == 1, 'one image-encoder pass per image'
    assert dec.n == 2, 'one mask-decoder call per decode, whatever the number of prompts'
    assert emb.original_size == (150, 250) and emb.input_size == (SIZE, SIZE)
    assert tuple(emb.embedding.shape) == (1, 256, SIZE // 16, SIZE // 16)
    assert [tuple(f.shape[-2:]) for f in emb.extras['high_res_feats']] == [(64, 64), (32, 32)]


@pytest.mark.parametrize('multimask,m', [(True, 3), (False, 1)])
def test_decode_shapes_at_image_size(backend, image, multimask, m):
    emb = backend.encode(image)
    masks, iou = backend.decode(emb, boxes=torch.tensor([[10., 10., 90., 70.]] * 4),
                                points=torch.tensor([[[40., 40.], [50., 30.]]] * 4),
                                point_labels=torch.tensor([[1, 0]] * 4), multimask=multimask)
    assert masks.shape == (4, m, 150, 250) and masks.dtype == torch.bool
    assert iou.shape == (4, m)
    logits, _ = backend.decode(emb, boxes=torch.tensor([[10., 10., 90., 70.]]),
                               return_logits=True)
    assert logits.dtype == torch.float32 and logits.shape[-2:] == (150, 250)


def test_batched_equals_separate_and_matches_the_sam2_predictor(backend, image):
    emb = backend.encode(image)
    boxes = torch.tensor([[10., 10., 90., 70.], [60., 30., 200., 140.]])
    batched, iou = backend.decode(emb, boxes=boxes, return_logits=True)
    for i in range(2):
        one, iou_one = backend.decode(emb, boxes=boxes[i:i + 1], return_logits=True)
        torch.testing.assert_close(one[0], batched[i], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(iou_one[0], iou[i], atol=1e-5, rtol=1e-5)
    # The same numbers as sam2's own SAM2ImagePredictor.
    from sam2.sam2_image_predictor import SAM2ImagePredictor
    pred = SAM2ImagePredictor(backend.model)
    pred._bb_feat_sizes = [(64, 64), (32, 32), (16, 16)]
    pred.set_image(image)
    ref_masks, ref_iou, _ = pred.predict(box=boxes.numpy(), multimask_output=True)
    np.testing.assert_allclose(ref_iou, iou.numpy(), atol=1e-5)
    assert ((batched > 0).numpy() == ref_masks.astype(bool)).mean() > 0.999


def test_max_prompts_per_call_chunks(sam2_ckpt, image):
    chunked = Sam2Backend(CONFIG, sam2_ckpt[0], image_size=SIZE, max_prompts_per_call=2)
    dec = Calls(chunked.model.sam_mask_decoder)
    emb = chunked.encode(image)
    boxes = torch.tensor([[10., 10., 90., 70.]] * 5)
    masks, _ = chunked.decode(emb, boxes=boxes)
    dec.close()
    assert dec.n == 3 and masks.shape[0] == 5


def test_decoder_image_tokens_are_the_last_two_way_block_keys(backend, image):
    emb = backend.encode(image)
    pts = torch.tensor([[[40., 40.]], [[200., 120.]]])
    from mmssis.sam.base import capture_output
    with capture_output(backend.model.sam_mask_decoder.transformer) as store:
        tokens = backend.decoder_image_tokens(emb, pts)
    keys = store['output'][1]  # (N, h*w, C)
    g = SIZE // 16
    assert tokens.shape == (2, 256, g, g)
    torch.testing.assert_close(tokens.flatten(2).transpose(1, 2), keys)
    assert not torch.allclose(tokens[0], tokens[1]), 'tokens depend on the prompt'


def test_token_centres_cover_the_stretched_square_input(backend, image):
    emb = backend.encode(image)
    centres, valid = backend.token_centres(emb)
    g = SIZE // 16
    assert centres.shape == (g * g, 2) and valid.all()
    torch.testing.assert_close(centres[0], torch.tensor([250 / g / 2, 150 / g / 2]))
    torch.testing.assert_close(centres[-1], torch.tensor([250 - 250 / g / 2, 150 - 150 / g / 2]))


def test_zero_prompts_and_registry(backend, image):
    emb = backend.encode(image)
    masks, iou = backend.decode(emb, boxes=torch.zeros((0, 4)))
    assert masks.shape == (0, 3, 150, 250) and iou.shape == (0, 3)
    assert MODELS.get('Sam2Backend') is Sam2Backend


def test_cache_namespace_names_config_size_and_weights(backend):
    assert backend.cache_namespace == f'sam2:sam2.1_hiera_t.yaml:{SIZE}:sam2.1_hiera_tiny_256.pt'


def test_missing_wrong_and_unsafe_files_are_clear_errors(sam2_ckpt, tmp_path):
    with pytest.raises(FileNotFoundError, match='not found'):
        Sam2Backend(CONFIG, str(tmp_path / 'nope.pt'), image_size=SIZE)
    text = tmp_path / 'notes.txt'
    text.write_text('not a checkpoint')
    with pytest.raises(SamCheckpointError, match='notes.txt'):
        Sam2Backend(CONFIG, str(text), image_size=SIZE)
    # segment-anything weights are another architecture.
    other = tmp_path / 'sam_vit_tiny.pth'
    torch.save(build_tiny_sam().state_dict(), other)
    with pytest.raises(SamCheckpointError, match='is not a SAM 2 .*missing keys'):
        Sam2Backend(CONFIG, str(other), image_size=SIZE)
    # SAM 2.1 Hiera-T weights given to the Hiera-S config: another SAM 2 size.
    with pytest.raises(SamCheckpointError, match=r'sam2.1_hiera_tiny_256.pt.*not a SAM 2 '
                       r'\(configs/sam2.1/sam2.1_hiera_s.yaml'):
        Sam2Backend('configs/sam2.1/sam2.1_hiera_s.yaml', sam2_ckpt[0], image_size=SIZE)
    # Pickled code is refused by weights_only loading.
    unsafe = tmp_path / 'unsafe.pt'
    torch.save({'model': {'w': torch.zeros(1)}, 'obj': Calls}, unsafe)
    with pytest.raises(SamCheckpointError, match='weights_only'):
        Sam2Backend(CONFIG, str(unsafe), image_size=SIZE)


def test_sam_follows_the_model_device_unless_pinned():
    follow = SamModelBackend(build_tiny_sam())
    assert follow.pinned_device is None
    follow.follow('meta')
    assert follow.device.type == 'meta'
    pinned = SamModelBackend(build_tiny_sam(), device='cpu')
    pinned.follow('meta')
    assert pinned.device.type == 'cpu'


@pytest.mark.slow
def test_mmssis_imports_without_sam2(tmp_path):
    """mmssis stays importable when the optional sam2 package is missing."""
    code = (
        'import importlib.abc, sys\n'
        'class Block(importlib.abc.MetaPathFinder):\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        "        if name == 'sam2' or name.startswith('sam2.'):\n"
        "            raise ImportError('blocked')\n"
        'sys.meta_path.insert(0, Block())\n'
        'import mmssis.sam\n'
        'from mmssis.sam.sam2_backend import Sam2Backend, sam2_available\n'
        'assert not sam2_available()\n'
        'try:\n'
        "    Sam2Backend('x', 'y')\n"
        'except ImportError as e:\n'
        "    assert 'mmssis[sam2]' in str(e)\n"
        'else:\n'
        "    raise SystemExit('no ImportError')\n"
        "print('ok')\n")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=repo)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith('ok')
    assert importlib.util.find_spec('sam2') is not None, 'the project venv installs sam2'
