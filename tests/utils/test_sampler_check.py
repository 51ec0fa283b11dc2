"""check_semi_sampler: clear errors for semi-supervised batch settings mmdet trains or hangs on."""
import glob
import json
import os.path as osp

import pytest
from mmengine.config import Config

from mmssis.utils.sampler_check import (SemiSamplerConfigError, check_semi_sampler,
                                           count_images_in_ann_file, per_source_counts)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def loader(batch_size=4, source_ratio=(2, 2), sampler='GroupMultiSourceSampler',
           loader_bs=None, sources=None):
    sources = sources if sources is not None else [
        dict(type='CheckedCocoDataset', data_root='data/x/', ann_file='lab.json'),
        dict(type='CheckedCocoDataset', data_root='data/x/', ann_file='unl.json'),
    ]
    return dict(
        batch_size=batch_size if loader_bs is None else loader_bs,
        sampler=dict(type=sampler, batch_size=batch_size, source_ratio=list(source_ratio)),
        dataset=dict(type='ConcatDataset', datasets=sources))


def test_valid_settings_return_counts():
    assert check_semi_sampler(dict(train_dataloader=loader()), world_size=8) == [2, 2]
    assert check_semi_sampler(loader(6, (3, 3)), world_size=4,
                              dataset_sizes=[1183, 116083]) == [3, 3]


def test_not_a_multi_source_loader_is_skipped():
    cfg = dict(train_dataloader=dict(batch_size=2, sampler=dict(type='DefaultSampler'),
                                     dataset=dict(type='CocoDataset')))
    assert check_semi_sampler(cfg) is None
    assert check_semi_sampler(dict(test_dataloader={})) is None


def test_scope_prefixed_sampler_type_is_checked():
    with pytest.raises(SemiSamplerConfigError):
        check_semi_sampler(loader(4, (1, 2), sampler='mmdet.MultiSourceSampler'))


def test_ratio_not_dividing_batch_size_names_everything():
    with pytest.raises(SemiSamplerConfigError) as err:
        check_semi_sampler(loader(4, (1, 2)), world_size=8)
    msg = str(err.value)
    assert 'batch_size=4' in msg and 'source_ratio=[1, 2]' in msg and 'world size=8' in msg
    assert '[2, 2]' in msg  # what mmdet would actually draw


def test_fractional_ratio_summing_to_batch_is_rejected_with_a_proposal():
    """batch 3 with [1.5, 1.5] sums to the batch but mmdet trains 2 + 1."""
    with pytest.raises(SemiSamplerConfigError) as err:
        check_semi_sampler(loader(3, (1.5, 1.5)))
    msg = str(err.value)
    assert 'would draw [2, 1]' in msg
    assert 'batch_size=3 with source_ratio=[2, 1]' in msg
    assert 'batch_size=4 with source_ratio=[2, 2]' in msg
    # every proposal passes the check itself
    assert check_semi_sampler(loader(3, (2, 1))) == [2, 1]
    assert check_semi_sampler(loader(4, (2, 2))) == [2, 2]


def test_scaled_ratio_accepted_unless_strict():
    # mmssis' demo config: batch 4 with ratio [1, 1] -> 2 + 2, an exact scaling.
    assert check_semi_sampler(loader(4, (1, 1))) == [2, 2]
    with pytest.raises(SemiSamplerConfigError, match='must equal batch_size=4'):
        check_semi_sampler(loader(4, (1, 1)), strict_sum=True)


@pytest.mark.parametrize('ratio', [(0, 4), (0.5, 3.5), (True, 3)])
def test_ratio_entries_below_one_rejected(ratio):
    with pytest.raises(SemiSamplerConfigError, match='>= 1'):
        check_semi_sampler(loader(4, ratio))


def test_loader_and_sampler_batch_size_must_agree():
    with pytest.raises(SemiSamplerConfigError, match='straddle'):
        check_semi_sampler(loader(4, (2, 2), loader_bs=8))


def test_ratio_length_and_concat_dataset():
    with pytest.raises(SemiSamplerConfigError, match='3 entries for 2'):
        check_semi_sampler(loader(3, (1, 1, 1), sampler='MultiSourceSampler'))
    bad = loader()
    bad['dataset'] = dict(type='CocoDataset')
    with pytest.raises(SemiSamplerConfigError, match='ConcatDataset'):
        check_semi_sampler(bad)


def test_group_sampler_needs_two_sources():
    three = [dict(type='CocoDataset')] * 3
    with pytest.raises(SemiSamplerConfigError, match='exactly 2'):
        check_semi_sampler(loader(3, (1, 1, 1), sources=three))
    assert check_semi_sampler(
        loader(3, (1, 1, 1), sampler='MultiSourceSampler', sources=three)) == [1, 1, 1]


def test_empty_and_too_small_sources():
    with pytest.raises(SemiSamplerConfigError, match=r'source 0 \(data/x/lab.json\) is empty'):
        check_semi_sampler(loader(), dataset_sizes=[0, 100])
    with pytest.raises(SemiSamplerConfigError) as err:
        check_semi_sampler(loader(), world_size=8, dataset_sizes=[10, 100])
    assert '2 per GPU x 8 GPUs = 16' in str(err.value)
    assert check_semi_sampler(loader(), world_size=8, dataset_sizes=[16, 100]) == [2, 2]


def test_world_size_validated():
    with pytest.raises(SemiSamplerConfigError, match='world size'):
        check_semi_sampler(loader(), world_size=0)


def test_orientation_group_missing_in_one_source_hangs_group_sampler():
    groups = [{0: 0, 1: 20}, {0: 5, 1: 50}]
    with pytest.raises(SemiSamplerConfigError, match='portrait'):
        check_semi_sampler(loader(), group_sizes=groups)
    # MultiSourceSampler does not group: fine.
    assert check_semi_sampler(loader(sampler='MultiSourceSampler'), group_sizes=groups)
    # Cityscapes-like: every image landscape in both sources.
    assert check_semi_sampler(loader(), group_sizes=[{0: 0, 1: 20}, {0: 0, 1: 90}])


class _FakeDataset:
    def __init__(self, shapes):
        self.shapes = shapes

    def __len__(self):
        return len(self.shapes)

    def get_data_info(self, i):
        w, h = self.shapes[i]
        return dict(width=w, height=h)


def test_built_datasets_give_sizes_and_groups():
    lab = _FakeDataset([(64, 48)] * 4)
    unl = _FakeDataset([(64, 48)] * 4 + [(48, 64)])
    with pytest.raises(SemiSamplerConfigError, match=r'source 0'):
        check_semi_sampler(loader(), datasets=[lab, unl])
    assert check_semi_sampler(loader(sampler='MultiSourceSampler'), world_size=2,
                              datasets=[lab, unl]) == [2, 2]


def _write_coco(path, shapes, with_ann):
    doc = dict(images=[dict(id=i + 1, file_name=f'{i}.jpg', width=w, height=h)
                       for i, (w, h) in enumerate(shapes)],
               annotations=[dict(id=i + 1, image_id=i + 1, category_id=1, iscrowd=0,
                                 bbox=[0, 0, 4, 4], area=16)
                            for i in range(len(shapes)) if with_ann(i)],
               categories=[dict(id=1, name='a')])
    with open(path, 'w') as f:
        json.dump(doc, f)


def test_read_ann_files(tmp_path):
    _write_coco(tmp_path / 'lab.json', [(64, 48)] * 3, lambda i: i == 0)
    _write_coco(tmp_path / 'unl.json', [(64, 48)] * 10, lambda i: False)
    assert count_images_in_ann_file(str(tmp_path / 'lab.json'), labelled=True) == (1, {0: 0,
                                                                                        1: 1})
    sources = [
        dict(type='CocoDataset', data_root=str(tmp_path), ann_file='lab.json',
             filter_cfg=dict(filter_empty_gt=True)),
        dict(type='CocoDataset', data_root=str(tmp_path), ann_file='unl.json',
             filter_cfg=dict(filter_empty_gt=False)),
    ]
    # Only 1 labelled image with annotations, 2 needed per batch on one GPU.
    with pytest.raises(SemiSamplerConfigError, match='has 1 images'):
        check_semi_sampler(loader(sources=sources), read_ann_files=True)
    # Missing files are skipped (nothing to count).
    missing = [dict(s, ann_file='nope.json') for s in sources]
    assert check_semi_sampler(loader(sources=missing), read_ann_files=True) == [2, 2]


def test_per_source_counts_matches_mmdet():
    assert per_source_counts(5, [1, 4]) == [1, 4]
    assert per_source_counts(4, [1, 2]) == [2, 2]
    assert per_source_counts(6, [3, 3]) == [3, 3]


SEMI_CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p and 'semi-' in osp.basename(p))


@pytest.mark.parametrize('path', SEMI_CONFIGS, ids=[osp.relpath(p, REPO) for p in SEMI_CONFIGS])
def test_repo_semi_configs_pass(path):
    counts = check_semi_sampler(Config.fromfile(path), world_size=1)
    if osp.basename(path).startswith(('gd_', 'gd-calib_', 's4m_')):
        assert counts is not None and min(counts) >= 1
