"""Are the teacher-side pseudo-labels of two trees the same on the same batches?

The demo's full S4M stage (`configs/demo/s4m_mask-rcnn_..._semi-0.08-demo.py`, LiteMedSAM
box prompts: refinement draws no random points) on the real demo data. Three commands:

* ``prepare --work W`` (one tree): generates the demo data, saves the teacher's weights
  (the config's initialisation, seed 0) and ``--batches`` unlabelled batches through the
  config's own pipeline (images as tensors, metainfo as JSON), so both trees see the very
  same pixels, views and weights;
* ``dump --work W --out F`` (each tree, ``PYTHONPATH`` = that tree): rebuilds the model from
  that tree's config, loads the weights and runs ``SemiMaskDetector.pseudo_label`` on the
  saved batches; writes every image's candidates (scores, labels, mask logits), kept
  pseudo-instances (masks, labels, scores) and SAM-refined masks;
* ``compare A B --out R``: exact equality per image and stage (``torch.equal``), written
  as markdown and JSON.

A random-weight teacher scores every class near 1 / (classes + 1), so the score threshold
is lowered (``--score-thr``) to keep detections, and ``policy='always'`` refines every kept
mask (the demo's ``'measured'`` needs a run's measurement first).
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/demo/s4m_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'


def load_cfg(work: str, score_thr: float):
    from mmengine.config import Config
    os.environ['MMSSIS_DEMO_ROOT'] = osp.join(work, 'data') + '/'
    os.environ['MMSSIS_SAM_CACHE'] = osp.join(work, 'sam_cache')
    cfg = Config.fromfile(osp.join(REPO, CONFIG))
    semi = cfg.model.semi_train_cfg
    semi.score_thr = score_thr
    semi.sam_refiner.policy = 'always'
    refiner = semi.sam_refiner.get('refiner', semi.sam_refiner)  # nested before the merge
    refiner.cache = None  # encode every image in this process
    return cfg


def build_model(cfg):
    from mmengine.registry import DefaultScope

    from mmssis.registry import MODELS
    from mmssis.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg.model.detector.backbone.pretrained = False  # weights come from the saved file
    with DefaultScope.overwrite_default_scope('mmssis'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    return model.eval()


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return {'__array__': v.tolist(), 'dtype': str(v.dtype)}
    if isinstance(v, tuple):
        return {'__tuple__': [_jsonable(x) for x in v]}
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    return v


def _from_json(v):
    if isinstance(v, dict) and '__array__' in v:
        return np.array(v['__array__'], dtype=v['dtype'])
    if isinstance(v, dict) and '__tuple__' in v:
        return tuple(_from_json(x) for x in v['__tuple__'])
    return v


def prepare(args) -> None:
    from mmengine.registry import DefaultScope

    from mmssis.datasets.semi_data import build_unlabelled_dataset
    subprocess.run([sys.executable, osp.join(REPO, 'tools/misc/generate_demo_data.py'),
                    '--out', osp.join(args.work, 'data')], cwd=REPO, check=True)
    cfg = load_cfg(args.work, args.score_thr)  # ImageNet backbone init, as a real run
    from mmssis.registry import MODELS
    from mmssis.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmssis'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
    torch.save(model.state_dict(), osp.join(args.work, 'weights.pth'))
    ds = build_unlabelled_dataset(cfg)
    items = []
    for i in range(args.batches * args.batch_size):
        np.random.seed(i)  # the pipeline's random views, the same for both trees
        item = ds[i]
        items.append(dict(
            inputs={k: None if v is None else v.numpy().tolist()
                    for k, v in item['inputs'].items()},
            metainfo={k: None if s is None else {m: _jsonable(x) for m, x in s.metainfo.items()}
                      for k, s in item['data_samples'].items()}))
    with open(osp.join(args.work, 'batches.json'), 'w') as f:
        json.dump(dict(batch_size=args.batch_size, items=items), f)
    print(f'prepared {len(items)} images, weights and data under {args.work}')


def _batches(work: str):
    from mmdet.structures import DetDataSample
    from mmengine.dataset import pseudo_collate
    from mmengine.structures import InstanceData
    with open(osp.join(work, 'batches.json')) as f:
        saved = json.load(f)
    items = []
    for it in saved['items']:
        samples = {}
        for k, meta in it['metainfo'].items():
            if meta is None:  # a branch this source does not have (the labelled one)
                continue
            s = DetDataSample()
            s.set_metainfo({m: _from_json(x) for m, x in meta.items()})
            # unlabelled: no ground truth (PackDetInputs packs empty instances)
            s.gt_instances = InstanceData(bboxes=torch.zeros(0, 4),
                                          labels=torch.zeros(0, dtype=torch.long))
            samples[k] = s
        items.append(dict(inputs={k: torch.tensor(v, dtype=torch.uint8)
                                  for k, v in it['inputs'].items() if v is not None},
                          data_samples=samples))
    b = saved['batch_size']
    for i in range(0, len(items), b):
        yield pseudo_collate(items[i:i + b])


def dump(args) -> None:
    cfg = load_cfg(args.work, args.score_thr)
    model = build_model(cfg)
    state = torch.load(osp.join(args.work, 'weights.pth'), map_location='cpu',
                       weights_only=True)
    model.load_state_dict(state)
    out = []
    with torch.no_grad():
        for batch in _batches(args.work):
            data = model.data_preprocessor(batch, True)
            inputs, samples = data['inputs'], data['data_samples']
            rec = model.pseudo_label(inputs['unsup_teacher'], samples['unsup_teacher'])
            for i in range(len(rec.candidates)):
                c, k = rec.candidates[i], rec.kept[i]
                row = dict(cand_scores=c.scores, cand_labels=c.labels,
                           cand_logits=c.mask_logits, kept_masks=torch.as_tensor(k.masks),
                           kept_labels=k.labels, kept_scores=k.scores)
                if rec.refined is not None:
                    row['refined_masks'] = torch.as_tensor(rec.refined[i].masks)
                out.append({n: t.detach().cpu() for n, t in row.items()})
    torch.save(out, args.out)
    print(f'{args.out}: {len(out)} images, kept per image '
          f'{[int(r["kept_labels"].numel()) for r in out]}')


def compare(args) -> None:
    a = torch.load(args.a, weights_only=True)
    b = torch.load(args.b, weights_only=True)
    if len(a) != len(b):
        raise SystemExit(f'{len(a)} vs {len(b)} images')
    keys = sorted(set(a[0]) | set(b[0]))
    table = {k: sum(k in x and k in y and x[k].shape == y[k].shape and torch.equal(x[k], y[k])
                    for x, y in zip(a, b)) for k in keys}
    maxdiff = {k: max((float((x[k].float() - y[k].float()).abs().max())
                       if k in x and k in y and x[k].shape == y[k].shape and x[k].numel()
                       else (0.0 if k in x and k in y and x[k].shape == y[k].shape
                             else float('inf')))
                      for x, y in zip(a, b)) for k in keys}
    kept = [int(x['kept_labels'].numel()) for x in a]
    lines = ['# Teacher-side pseudo-labels, two trees, the same batches', '',
             f'`{osp.basename(args.a)}` vs `{osp.basename(args.b)}`: {len(a)} unlabelled '
             f'demo images, kept pseudo-instances per image {kept}.', '',
             '| field | images identical | max abs difference |', '| --- | --- | --- |']
    lines += [f'| {k} | {table[k]} / {len(a)} | {maxdiff[k]:g} |' for k in keys]
    text = '\n'.join(lines) + '\n'
    print(text)
    with open(args.out, 'w') as f:
        f.write(text)
    with open(osp.splitext(args.out)[0] + '.json', 'w') as f:
        json.dump(dict(identical=table, max_abs_diff=maxdiff, images=len(a), kept=kept), f,
                  indent=2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    for name in ('prepare', 'dump'):
        s = sub.add_parser(name)
        s.add_argument('--work', required=True)
        s.add_argument('--score-thr', type=float, default=0.15)
        s.add_argument('--batches', type=int, default=4)
        s.add_argument('--batch-size', type=int, default=2)
        if name == 'dump':
            s.add_argument('--out', required=True)
    c = sub.add_parser('compare')
    c.add_argument('a')
    c.add_argument('b')
    c.add_argument('--out', default=osp.join(REPO, 'benchmarks/results/'
                                                   'pseudo_label_identity.md'))
    args = p.parse_args()
    torch.set_num_threads(2)
    dict(prepare=prepare, dump=dump, compare=compare)[args.cmd](args)


if __name__ == '__main__':
    main()
