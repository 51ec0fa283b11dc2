"""tools/misc/cache_sam_embeddings.py: encodes unlabelled originals once into the disk cache."""
import os.path as osp

import pytest
from mmssis.testing.tools import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/demo/s4m-refine_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py')


def _tool():
    return load_tool('misc/cache_sam_embeddings.py')


@pytest.mark.slow
def test_precompute_then_training_keys_hit(tiny_demo, tmp_path, monkeypatch):
    monkeypatch.setenv('MMSSIS_DEMO_ROOT', tiny_demo.root.rstrip('/') + '/')
    monkeypatch.setenv('MMSSIS_SAM_CACHE', str(tmp_path / 'cache'))
    tool = _tool()
    first = tool.main([CONFIG, '--max-images', '2'])
    assert first == dict(images=2, encoded=2, cached=0)
    assert len(list((tmp_path / 'cache').iterdir())) == 2
    again = tool.main([CONFIG, '--max-images', '3'])  # resumable: only the new one
    assert again == dict(images=3, encoded=1, cached=2)

    # the keys are the ones the training-time refiner looks up (img_path, original frame)
    from mmengine.config import Config

    from mmssis.datasets.semi_data import build_unlabelled_dataset
    from mmssis.registry import MODELS
    from mmssis.sam import SamMaskRefiner, original_cache_key
    cfg = Config.fromfile(CONFIG)
    refiner = MODELS.build(cfg.model.semi_train_cfg.sam_refiner)
    assert isinstance(refiner, SamMaskRefiner)
    ds = build_unlabelled_dataset(cfg)
    ds.full_init()
    hits = [refiner.in_cache(original_cache_key(ds.get_data_info(i)['img_path']))
            for i in range(len(ds))]
    assert hits[:3] == [True] * 3 and not any(hits[3:])
    # keys are absolute: the same image through a relative path hits too
    rel = osp.relpath(ds.get_data_info(0)['img_path'])
    assert original_cache_key(rel) == original_cache_key(ds.get_data_info(0)['img_path'])
    assert osp.isabs(original_cache_key(rel))

    # --include-labelled: the calibration slice (the labelled split, read by SamBenefitHook
    # through the same refiner) is in the cache too
    from mmssis.datasets.semi_data import build_labelled_dataset
    lab = build_labelled_dataset(cfg)
    lab.full_init()
    stats = tool.main([CONFIG, '--max-images', '3', '--include-labelled'])
    assert stats == dict(images=3 + len(lab), encoded=len(lab), cached=3)
    assert cfg.calibration_dataloader.dataset.ann_file == lab.ann_file.split(
        lab.data_root)[-1].lstrip('/')
    assert all(refiner.in_cache(original_cache_key(lab.get_data_info(i)['img_path']))
               for i in range(len(lab)))


def test_view_embeddings_cannot_be_precomputed():
    from mmssis.sam import SamMaskRefiner, SamModelBackend
    from mmssis.testing import build_tiny_sam
    refiner = SamMaskRefiner(SamModelBackend(build_tiny_sam()), cache=dict(max_items=2),
                             embed_on='view')
    with pytest.raises(ValueError, match="embed_on='original'"):
        refiner.precompute(['a.png'])
    with pytest.raises(ValueError, match='cache'):
        SamMaskRefiner(SamModelBackend(build_tiny_sam())).precompute(['a.png'])
