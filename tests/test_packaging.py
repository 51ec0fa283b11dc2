"""What ships with the package: licence, model index (`mim search`), split lists, scripts."""
import glob
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_licence_and_manifest():
    with open(osp.join(REPO, 'LICENSE')) as f:
        text = f.read()
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    manifest = open(osp.join(REPO, 'MANIFEST.in')).read()
    for name in ('LICENSE', 'model-index.yml', 'data_splits'):
        assert name in manifest
    assert osp.isfile(osp.join(REPO, 'data_splits', 'cityscapes', 'LICENSE-S4M.txt'))
    for pct in (5, 10, 20, 30):
        with open(osp.join(REPO, 'data_splits', 'cityscapes', f'perc_{pct}.txt')) as f:
            names = [n for n in f.read().split() if n]
        assert names and all(n.endswith('_gtFine_instanceIds.png') for n in names)


def test_model_index_covers_every_config():
    with open(osp.join(REPO, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    listed = set()
    for metafile in index['Import']:
        with open(osp.join(REPO, metafile)) as f:
            listed |= {m['Config'] for m in yaml.safe_load(f)['Models']}
    for folder in ('s4m', 'demo'):
        for path in glob.glob(osp.join(REPO, 'configs', folder, '*.py')):
            rel = osp.relpath(path, REPO)
            assert rel in listed, f'{rel} has no model-index entry'
    assert all(osp.isfile(osp.join(REPO, c)) for c in listed)


@pytest.mark.slow
def test_mim_search_lists_the_configs():
    """`mim search mmssis` reads the installed package's model index (setup.py puts it in
    mmssis/.mim)."""
    mim = shutil.which('mim') or osp.join(osp.dirname(sys.executable), 'mim')
    out = subprocess.run([mim, 'search', 'mmssis'], capture_output=True, text=True,
                         timeout=300, cwd='/')
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for name in ('s4m_mask2former_r50_368k_semi-0.01-coco',
                 's4m_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo'):
        assert name in out.stdout, out.stdout[-3000:]
