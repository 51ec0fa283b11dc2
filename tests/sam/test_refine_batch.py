"""SamMaskRefiner on a detector's batch: de-normalisation, both embedding frames, policies,
no SAM weights saved."""
import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

import mmssis.sam.refiner as sam_refiner
from mmssis.models.utils import view_normalization
from mmssis.structures import denormalize_views
from mmssis.registry import MODELS
from mmssis.sam import EmbeddingCache, SamMaskRefiner, SamModelBackend
from mmssis.testing import build_tiny_sam, make_semi_batch, tiny_mask_rcnn_cfg


def _preprocessor():
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(dict(type='mmdet.DetDataPreprocessor', mean=[127.0] * 3,
                                 std=[128.0] * 3, bgr_to_rgb=True))


def test_denormalize_round_trip():
    pre = _preprocessor()
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    data = pre(dict(inputs=[torch.from_numpy(bgr).permute(2, 0, 1)],
                    data_samples=None), False)
    _, samples = make_semi_batch(batch=1, img_shape=(40, 50))
    norm = view_normalization(pre)
    assert norm == dict(mean=[127.0] * 3, std=[128.0] * 3, channels='rgb')
    views = denormalize_views(data['inputs'], [s.metainfo['img_shape'] for s in samples['sup']],
                              **norm)
    np.testing.assert_array_equal(views[0], bgr[..., ::-1])


def _refiner(embed_on, cache=None):
    backend = SamModelBackend(build_tiny_sam(img_size=64))
    return SamMaskRefiner(backend, num_points=2, use_box=True, seed=0, cache=cache,
                          embed_on=embed_on)


def _batch(tmp_path):
    inputs, samples = make_semi_batch(batch=2, img_shape=(64, 64))
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = str(tmp_path / 'img.png')
    mmcv.imwrite(img, path)
    insts = []
    for i, s in enumerate(samples['unsup_teacher']):
        s.set_metainfo(dict(img_path=path))
        logits = torch.full((2, 64, 64), -4.0)
        logits[0, 5:25, 5:25] = 4.0
        logits[1, 30:60, 20:50] = 3.0
        inst = InstanceData(mask_logits=logits, masks=logits > 0, labels=torch.tensor([0, 1]),
                            scores=torch.tensor([0.9, 0.8]),
                            bboxes=torch.tensor([[5., 5, 25, 25], [20, 30, 50, 60]]))
        insts.append(inst if i == 0 else inst[:0])  # second image: no instances
    return inputs['unsup_teacher'], samples['unsup_teacher'], insts


@pytest.mark.parametrize('embed_on', ['view', 'original'])
def test_refine_batch_shapes_and_stats(tmp_path, embed_on):
    cache = EmbeddingCache(max_items=4)
    ref = _refiner(embed_on, cache)
    inputs, samples, insts = _batch(tmp_path)
    out, stats = ref.refine_batch(inputs, samples, insts, view_normalization(_preprocessor()))
    assert out[0].masks.shape == (2, 64, 64) and out[0].masks.dtype == torch.bool
    assert len(out[1]) == 0
    assert 0.0 <= stats['unsup_sam_teacher_iou'] <= 1.0
    assert 'sam_cache_hit_rate' in stats
    out, stats = ref.refine_batch(inputs, samples, insts, view_normalization(_preprocessor()))
    assert stats['sam_cache_hit_rate'] > 0  # the second step re-uses the embedding


def _semi_detector(refiner):
    cfg = ConfigDict(
        type='SemiMaskDetector', detector=tiny_mask_rcnn_cfg(),
        data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                               data_preprocessor=tiny_mask_rcnn_cfg()['data_preprocessor']),
        semi_train_cfg=dict(score_thr=0.0))
    with DefaultScope.overwrite_default_scope('mmssis'):
        model = MODELS.build(cfg)
    object.__setattr__(model, '_sam_refiner', refiner)
    return model


def test_detector_with_sam_keeps_sam_out_of_state_dict(tmp_path):
    model = _semi_detector(_refiner('view'))
    inputs, samples = make_semi_batch(batch=2)
    model.train()
    losses = model.loss(inputs, samples)
    assert 'unsup_sam_teacher_iou' in losses
    sam_parts = ('image_encoder', 'prompt_encoder', 'mask_decoder', 'sam_refiner')
    assert not any(part in k for k in model.state_dict() for part in sam_parts)
    n_sam = sum(p.numel() for p in model.sam_refiner.backend.model.parameters())
    assert n_sam > 0 and all(
        p is not q for p in model.parameters()
        for q in model.sam_refiner.backend.model.parameters())


def test_original_image_is_read_only_on_a_cache_miss(tmp_path, monkeypatch):
    """With the embedding cached, a step never reads the image file (through
    mmengine.fileio, so remote storage works too)."""
    cache = EmbeddingCache(max_items=4)
    ref = _refiner('original', cache)
    inputs, samples, insts = _batch(tmp_path)
    reads = []
    real_get = sam_refiner.fileio.get
    monkeypatch.setattr(sam_refiner.fileio, 'get',
                        lambda path, **kw: reads.append(path) or real_get(path, **kw))
    ref.refine_batch(inputs, samples, insts)
    assert len(reads) == 1  # the first step: a miss
    ref.refine_batch(inputs, samples, insts)
    assert len(reads) == 1  # the second: cached, nothing read


def test_stale_cache_entry_of_another_image_size_is_an_error(tmp_path):
    cache = EmbeddingCache(max_items=4)
    ref = _refiner('original', cache)
    inputs, samples, insts = _batch(tmp_path)
    ref.refine_batch(inputs, samples, insts)
    samples[0].set_metainfo(dict(ori_shape=(32, 32)))
    with pytest.raises(ValueError, match='stale'):
        ref.refine_batch(inputs, samples, insts)


def test_policies_choose_which_instances_go_to_sam(tmp_path):
    """'never' runs no SAM at all; 'measured' refines the enabled classes only and keeps
    the others' teacher masks; 'always' refines all (same masks as before policies)."""
    inputs, samples, insts = _batch(tmp_path)
    norm = view_normalization(_preprocessor())
    always, stats = _refiner('original').refine_batch(inputs, samples, insts, norm)
    assert 'unsup_sam_sent' not in stats  # S4M's logs unchanged

    ref = _refiner('original')
    encodes = []
    original = ref.backend.encode
    ref.backend.encode = lambda *a, **k: encodes.append(1) or original(*a, **k)
    ref.policy = 'never'
    out, stats = ref.refine_batch(inputs, samples, insts, norm)
    assert not encodes and stats['unsup_sam_sent'] == 0 and stats['unsup_sam_used'] == 0
    assert torch.equal(out[0].masks, insts[0].masks) and torch.isnan(out[0].sam_iou).all()

    ref.policy = 'measured'
    with pytest.raises(RuntimeError, match='SamBenefitHook'):
        ref.refine_batch(inputs, samples, insts, norm)
    ref.set_class_enabled([False, True])
    out, stats = ref.refine_batch(inputs, samples, insts, norm)
    assert len(encodes) == 1 and stats['unsup_sam_sent'] == 0.5
    assert torch.equal(out[0].masks[0], insts[0].masks[0])  # class 0: teacher mask
    assert not torch.equal(out[0].masks[1], insts[0].masks[1])
    assert torch.isnan(out[0].sam_iou[0]) and not torch.isnan(out[0].sam_iou[1])
    ref.set_class_enabled([True])
    with pytest.raises(ValueError, match='1 classes'):
        ref.refine_batch(inputs, samples, insts, norm)

    # ungated: a copy sharing SAM that refines everything, whatever the policy
    ref.set_class_enabled([False, False])
    free = ref.ungated()
    assert free.backend is ref.backend and free.policy == 'always'
    assert ref.policy == 'measured' and ref.class_enabled == [False, False]
    with pytest.raises(ValueError, match='policy must be one of'):
        SamMaskRefiner(ref.backend, policy='sometimes')
    assert always[0].masks.shape == out[0].masks.shape


def _empty_output_refiner(empty_fallback: bool) -> SamMaskRefiner:
    """SAM whose highest-IoU multimask output is empty (the drawing sits in another slot)."""
    from mmssis.testing import build_echo_sam
    sam = build_echo_sam(img_size=64, iou_values=(0.9, 0.5, 0.7), best_index=1)
    return SamMaskRefiner(SamModelBackend(sam), num_points=3, point_region='all',
                          multimask=True, empty_fallback=empty_fallback, seed=0,
                          embed_on='view')


def test_official_refinement_replaces_unconditionally(monkeypatch):
    """Official S4M: the SAM mask with the highest predicted IoU replaces the teacher's,
    also when it is empty, and no refined instance is dropped for its area."""
    from mmssis.models.detectors import semi_mask_detector
    from mmssis.testing import gt_teacher_pseudo_instances
    monkeypatch.setattr(semi_mask_detector, 'teacher_pseudo_instances',
                        gt_teacher_pseudo_instances)
    inputs, samples = make_semi_batch(batch=2)
    for empty_fallback in (False, True):
        model = _semi_detector(_empty_output_refiner(empty_fallback))
        assert model.sam_refiner.replaces_always is (not empty_fallback)
        model.eval()
        record = model.pseudo_label(inputs['sup'], samples['sup'])  # GT as the teacher's
        kept, refined = record.kept, record.refined
        assert sum(len(k) for k in kept) > 0
        if not empty_fallback:  # reference: every kept instance, with SAM's (empty) mask
            assert [len(r) for r in refined] == [len(k) for k in kept]
            assert all(not r.masks.any() for r in refined)
        else:  # mmssis option: the teacher's mask is kept where SAM's is empty
            for k, r, rows in zip(kept, refined, record.refined_rows):
                assert torch.equal(r.masks, k.masks[rows])


def test_canvas_view_gives_sam_the_padded_input_and_crops_back(tmp_path, monkeypatch):
    inputs, samples, insts = _batch(tmp_path)
    for s in samples:
        s.set_metainfo(dict(img_shape=(40, 50)))
    insts = [InstanceData(mask_logits=i.mask_logits[:, :40, :50], masks=i.masks[:, :40, :50],
                          labels=i.labels, scores=i.scores, bboxes=i.bboxes) for i in insts]
    seen = {}
    for extent, shape in (('content', (40, 50)), ('canvas', (64, 64))):
        ref = SamMaskRefiner(SamModelBackend(build_tiny_sam(img_size=64)), num_points=2,
                             seed=0, embed_on='view', view_extent=extent)
        real = ref.refine_embedding

        def spy(emb, logits, *args, **kwargs):
            seen[extent] = (emb.original_size, tuple(logits.shape[1:]))
            return real(emb, logits, *args, **kwargs)

        monkeypatch.setattr(ref, 'refine_embedding', spy)
        out, _ = ref.refine_batch(inputs, samples, insts, view_normalization(_preprocessor()))
        assert seen[extent] == (shape, shape)
        assert out[0].masks.shape == (2, 40, 50)
    with pytest.raises(ValueError, match="needs embed_on='view'"):
        SamMaskRefiner(_refiner('original').backend, embed_on='original',
                       view_extent='canvas')


def test_teacher_and_sam_run_outside_autocast(monkeypatch):
    """Under AMP's autocast the pseudo-labels are made in fp32 (official: outside it)."""
    from mmssis.models.detectors import semi_mask_detector
    real_teacher = semi_mask_detector.teacher_pseudo_instances
    seen = {}

    def teacher(model, inputs, samples):
        seen['teacher_autocast'] = torch.is_autocast_enabled('cpu')
        out = real_teacher(model, inputs, samples)
        seen['logit_dtypes'] = {c.mask_logits.dtype for c in out if len(c)}
        # one confident square per image, so that SAM runs too
        h, w = samples[0].metainfo['img_shape'][:2]
        logits = torch.full((1, h, w), -10.0)
        logits[0, 8:40, 8:40] = 10.0
        return [InstanceData(bboxes=torch.tensor([[8., 8, 40, 40]]), labels=torch.tensor([0]),
                             scores=torch.tensor([0.99]), mask_logits=logits) for _ in samples]

    monkeypatch.setattr(semi_mask_detector, 'teacher_pseudo_instances', teacher)
    model = _semi_detector(_refiner('view'))
    inputs, samples = make_semi_batch(batch=2)
    model.train()
    real = model.sam_refiner.refine_embedding

    def spy(emb, logits, *args, **kwargs):
        seen['sam_autocast'] = torch.is_autocast_enabled('cpu')
        return real(emb, logits, *args, **kwargs)

    model.sam_refiner.refine_embedding = spy
    # Only the pseudo-label stage of loss() is under test (the student runs in autocast).
    model.loss_by_gt_instances = lambda *a: {}
    model.loss_by_pseudo_instances = lambda *a: {}
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch.is_autocast_enabled('cpu')
        model.loss(inputs, samples)
    assert seen['teacher_autocast'] is False and seen['sam_autocast'] is False
    assert seen['logit_dtypes'] <= {torch.float32}


def test_nested_config_of_before_the_merge_builds_the_same_refiner():
    """``PseudoLabelSamRefiner(refiner=dict(SamMaskRefiner ...), embed_on=...)`` configs keep
    working (with a DeprecationWarning) and build one SamMaskRefiner with both key sets."""
    from mmssis.testing import build_echo_sam
    nested = dict(type='PseudoLabelSamRefiner', embed_on='view', policy='never',
                  refiner=dict(type='SamMaskRefiner', num_points=1, seed=3,
                               backend=SamModelBackend(build_echo_sam(img_size=64))))
    with pytest.warns(DeprecationWarning, match='move the keys'):
        ref = MODELS.build(nested)
    assert isinstance(ref, SamMaskRefiner)
    assert (ref.embed_on, ref.policy, ref.num_points, ref.seed) == ('view', 'never', 1, 3)
