"""Instance masks on your images with a trained mmssis model (through mmdet's DetInferencer).

Takes an image, a folder (recursive) or a list of either, and writes the images with the
predicted masks, boxes and scores to ``OUT_DIR/vis/`` (and the predictions as json to
``OUT_DIR/preds/`` with ``--save-pred``)::

    # the student of a semi checkpoint, exported as a plain mmdet model
    python tools/model_converters/export_student.py work_dirs/s4m/iter_180000.pth \\
        work_dirs/s4m/student.pth
    python demo/image_demo.py data/my_images/ work_dirs/s4m/student.py \\
        --weights work_dirs/s4m/student.pth --out-dir outputs/

Any mmdet / mmssis config with its checkpoint works the same way (a semi config builds its
SAM as well, so the exported student is the light choice). Output images are named after
the input files: equal names in different folders overwrite each other.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Instance segmentation on images')
    parser.add_argument('inputs', nargs='+', help='image file(s) and/or folder(s)')
    parser.add_argument('config', help='model config (exported student .py or an mmssis config)')
    parser.add_argument('--weights', required=True, help='checkpoint (.pth)')
    parser.add_argument('--out-dir', default='outputs', help='where vis/ and preds/ go')
    parser.add_argument('--device', default=None,
                        help='cuda when available, else cpu (default)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='draw predictions scoring at least this')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--save-pred', action='store_true', help='also write json predictions')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    from mmssis.utils import default_device
    args.device = args.device or default_device()
    return args


def collect_images(inputs: Sequence[str]) -> List[str]:
    """Every image file named or found (recursively, sorted) in the named folders.

    Raises:
        FileNotFoundError: An input does not exist, or no image was found.
    """
    from mmssis.datasets.image_folder import IMG_EXTENSIONS, list_images
    found: List[str] = []
    for item in inputs:
        if osp.isdir(item):
            found += list_images(item)
        elif osp.isfile(item):
            found.append(item)
        else:
            raise FileNotFoundError(f'image_demo: {item} does not exist')
    if not found:
        raise FileNotFoundError(f'image_demo: no image ({", ".join(IMG_EXTENSIONS)}) in '
                                f'{list(inputs)}')
    return found


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    """Run the model on the inputs; returns the written visualisation paths."""
    args = parse_args(argv)
    from mmdet.apis import DetInferencer
    from mmengine.config import Config

    from mmssis.utils import install_safe_globals, register_all_modules
    images = collect_images(args.inputs)
    cfg = Config.fromfile(args.config)
    scope = cfg.get('default_scope', 'mmdet')
    if scope == 'mmssis':
        register_all_modules(init_default_scope=False)
    install_safe_globals()  # mmengine's loader with weights_only=True + the allow-list
    inferencer = DetInferencer(model=cfg, weights=args.weights, device=args.device,
                               scope=scope, show_progress=not args.no_progress)
    inferencer(images, batch_size=args.batch_size, out_dir=args.out_dir,
               pred_score_thr=args.score_thr, no_save_pred=not args.save_pred)
    vis_dir = osp.join(args.out_dir, 'vis')
    written = [osp.join(vis_dir, osp.basename(p)) for p in images]
    missing = [p for p in written if not osp.isfile(p)]
    if missing:
        raise RuntimeError(f'image_demo: DetInferencer wrote no image for {missing[:3]}')
    print(f'{len(written)} image(s) with masks in {vis_dir}')
    return written


if __name__ == '__main__':
    main()
