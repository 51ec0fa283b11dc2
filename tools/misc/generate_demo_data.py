"""Generate the embedded demo data set (photo-textured shapes, COCO format).

Example::

    python tools/misc/generate_demo_data.py --out data/demo --seed 0

Re-running with the same arguments is a no-op (``meta.json`` is the cache
key); ``--force`` regenerates.
"""
import argparse
import json
import os
import time

from mmssis.demo.data import (DEMO_CLASSES, generate_demo_dataset,
                                       load_demo_stats)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate the mmssis demo instance segmentation data set')
    parser.add_argument('--out', default='data/demo', help='output data root')
    parser.add_argument('--seed', type=int, default=0, help='image seed')
    parser.add_argument('--num-train', type=int, default=300)
    parser.add_argument('--num-val', type=int, default=60)
    parser.add_argument('--image-size', type=int, default=256)
    parser.add_argument('--labeled-percent', type=float, default=8,
                        help='percentage of train images that are labelled')
    parser.add_argument('--split-seed', type=int, default=1,
                        help='seed of the labelled/unlabelled split')
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if up-to-date outputs exist')
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bar')
    parser.add_argument('--no-reference-check', action='store_true',
                        help='use the data even if its checksum differs from the reference '
                        'data of the default arguments')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    info = generate_demo_dataset(
        args.out, seed=args.seed, num_train=args.num_train,
        num_val=args.num_val, image_size=args.image_size,
        labeled_percent=args.labeled_percent, split_seed=args.split_seed,
        force=args.force, progress=not args.no_progress,
        check_reference=not args.no_reference_check)
    elapsed = time.perf_counter() - start
    if not info.regenerated:
        print(f'{args.out} is up to date (use --force to regenerate)')
    else:
        print(f'generated {args.out} in {elapsed:.1f}s')
    print(f'classes: {", ".join(DEMO_CLASSES)}')
    with open(os.path.join(args.out, 'meta.json')) as f:
        print(f'sha256: {json.load(f)["sha256"]}')
    for split, stats in (load_demo_stats(args.out) or {}).items():
        print(f'{split}: {stats["images"]} images, {stats["instances"]} '
              f'instances {stats["per_class"]}')
    for name in ('train_ann', 'val_ann', 'labeled_ann', 'unlabeled_ann'):
        print(f'{name}: {getattr(info, name)}')


if __name__ == '__main__':
    main()
