"""Split a COCO train annotation file into labelled/unlabelled parts.

Random splits, in the style of MMDetection's ``tools/misc/split_coco.py``
(one file pair per seed and percentage)::

    python tools/misc/split_coco.py --data-root data/coco \
        --ann-file annotations/instances_train2017.json \
        --out-dir data/coco/semi_anns --labeled-percent 1 2 5 10 --fold 5

Fixed lists (e.g. S4M's Cityscapes ``perc_5.txt``; names are matched on the
frame key, so ``*_gtFine_instanceIds.png`` lines match
``*_leftImg8bit.png`` images)::

    python tools/misc/split_coco.py --data-root data/cityscapes \
        --ann-file annotations/instancesonly_filtered_gtFine_train.json \
        --labeled-list data_splits/cityscapes/perc_5.txt

Outputs ``{prefix}.{seed}@{percent}[-unlabeled].json`` or
``{prefix}.{list stem}[-unlabeled].json``.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmssis.datasets.coco_split import CocoFormatError, split_coco


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Split COCO annotations for semi-supervised training')
    parser.add_argument('--data-root', default='data/coco/',
                        help='data root the other paths are relative to')
    parser.add_argument('--ann-file',
                        default='annotations/instances_train2017.json',
                        help='full train annotation file (under data root)')
    parser.add_argument('--out-dir', default=None,
                        help='output dir (default: the ann file\'s dir)')
    parser.add_argument('--labeled-percent', type=float, nargs='+',
                        default=[1, 2, 5, 10],
                        help='labelled percentages, each in (0, 100)')
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument('--fold', type=int, default=None,
                       help='use seeds 1..FOLD (MMDetection style)')
    seeds.add_argument('--seeds', type=int, nargs='+', default=None,
                       help='explicit seeds (default: 1)')
    parser.add_argument('--labeled-list', nargs='+', default=None,
                        help='list file(s) naming the labelled images, one '
                        'per line; replaces --labeled-percent/--fold')
    parser.add_argument('--allow-missing', action='store_true',
                        help='ignore listed names that match no image')
    parser.add_argument('--prefix', default=None,
                        help='output name prefix (default: ann file stem)')
    return parser.parse_args(argv)


def _seeds(args: argparse.Namespace) -> List[int]:
    if args.fold is not None:
        return list(range(1, args.fold + 1))
    return args.seeds or [1]


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    ann_file = osp.join(args.data_root, args.ann_file)
    out_dir = args.out_dir or osp.dirname(ann_file)
    try:
        if args.labeled_list:
            jobs = [dict(labeled_list=lst, strict=not args.allow_missing)
                    for lst in args.labeled_list]
        else:
            jobs = [dict(percent=p, seed=s) for s in _seeds(args)
                    for p in args.labeled_percent]
        for job in jobs:
            lab, unl = split_coco(ann_file, out_dir, prefix=args.prefix,
                                  **job)
            print(f'\nwrote {lab}\n      {unl}')
    except (CocoFormatError, ValueError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
