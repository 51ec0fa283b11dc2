"""How good are pseudo-labels? Precision / recall / mask IoU of pseudo-masks against GT.

Matching (per image, :func:`mmssis.structures.match_instances`): predictions are visited in
decreasing score order and each takes the still-unmatched GT instance with the highest mask
IoU, if that IoU is ``>= iou_thr`` (0.5) -- greedy, like COCO's evaluation at a single
threshold, and the rule the confidence calibration uses as well. With ``class_aware`` only
pairs with equal labels can match. From the matches (micro-averaged over all images):

* ``precision`` = matched predictions / predictions (0 when there are no predictions but
  there is GT, 1 when there is neither);
* ``recall`` = matched GT / GT (1 when there is no GT);
* ``miou`` = mean mask IoU of the matched pairs (0 without matches);
* ``best_iou`` = mean over *all* predictions of the IoU with their best GT (any GT,
  same class when ``class_aware``), i.e. mask quality including false positives;
* ``num_pred``, ``num_gt``, ``num_tp``, ``num_images``.

Predictions and GT must be in one frame (:func:`mmssis.structures.align_to_gt_frame`).
:func:`mmssis.evaluation.evaluate_pseudo_labels` runs a detector's pseudo-label path on images
with GT and accumulates these metrics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, Tuple

import torch
from mmengine.structures import InstanceData

from mmssis.structures import ImageMatch, as_bool_masks, match_instances

__all__ = ['PseudoLabelQuality', 'gt_instance_masks', 'format_quality_table']


@dataclass
class PseudoLabelQuality:
    """Accumulates :class:`ImageMatch` results; :meth:`compute` gives the metrics.

    The state is five sums and three counts, so ranks can be merged with
    :meth:`all_reduce` (a no-op outside distributed runs).
    """

    iou_thr: float = 0.5
    class_aware: bool = True
    num_images: int = 0
    num_pred: int = 0
    num_gt: int = 0
    num_tp: int = 0
    sum_matched_iou: float = 0.0
    sum_best_iou: float = 0.0
    _KEYS: ClassVar[Tuple[str, ...]] = ('num_images', 'num_pred', 'num_gt', 'num_tp',
                                        'sum_matched_iou', 'sum_best_iou')

    def add(self, match: ImageMatch) -> None:
        self.num_images += 1
        self.num_pred += match.num_pred
        self.num_gt += match.num_gt
        self.num_tp += match.num_tp
        self.sum_matched_iou += float(match.matched_ious.sum())
        self.sum_best_iou += float(match.best_ious.sum())

    def update(self, pred: InstanceData, gt: InstanceData) -> ImageMatch:
        """Match and accumulate one image.

        Args:
            pred: ``masks`` (P, H, W) bool tensor (or ``BitmapMasks``), ``labels``,
                optional ``scores``.
            gt: ``masks`` (G, H, W) in the same frame, ``labels``.

        Returns:
            The image's :class:`ImageMatch`.
        """
        match = match_instances(as_bool_masks(pred.masks), as_bool_masks(gt.masks),
                                pred.get('labels'), gt.get('labels'), pred.get('scores'),
                                self.iou_thr, self.class_aware)
        self.add(match)
        return match

    def all_reduce(self) -> None:
        """Sum the state over distributed ranks (in place)."""
        from mmengine import dist
        if dist.get_world_size() == 1:
            return
        t = torch.tensor([float(getattr(self, k)) for k in self._KEYS], dtype=torch.float64)
        dist.all_reduce(t)
        for k, v in zip(self._KEYS, t.tolist()):
            setattr(self, k, type(getattr(self, k))(v))

    def compute(self) -> Dict[str, float]:
        """Micro-averaged metrics (see the module docstring for the conventions)."""
        if self.num_pred:
            precision = self.num_tp / self.num_pred
        else:
            precision = 0.0 if self.num_gt else 1.0
        recall = self.num_tp / self.num_gt if self.num_gt else 1.0
        return dict(
            precision=precision, recall=recall,
            miou=self.sum_matched_iou / self.num_tp if self.num_tp else 0.0,
            best_iou=self.sum_best_iou / self.num_pred if self.num_pred else 0.0,
            num_pred=float(self.num_pred), num_gt=float(self.num_gt),
            num_tp=float(self.num_tp), num_images=float(self.num_images))


def gt_instance_masks(gt: InstanceData) -> Tuple[Tuple[int, int], InstanceData]:
    """The GT frame ``(H, W)`` and the GT as ``masks`` (G, H, W) bool + ``labels``."""
    masks = gt.masks
    if hasattr(masks, 'height'):
        frame = (int(masks.height), int(masks.width))
    else:
        frame = tuple(int(s) for s in masks.shape[-2:])
    return frame, InstanceData(masks=as_bool_masks(masks), labels=gt.labels)


#: The pseudo-label stages scored against GT, in path order: ``(metric prefix, title)``.
QUALITY_STAGES = (('teacher', 'teacher'), ('refined', 'SAM-refined'), ('mixed', 'ARP-mixed'))


def format_quality_table(metrics: Dict[str, float]) -> str:
    """A small text table (rows teacher/refined/mixed; precision, recall, mIoU ...)."""
    cols = ('precision', 'recall', 'miou', 'best_iou', 'num_pred', 'num_gt', 'num_tp')
    rows = [n for n, _ in QUALITY_STAGES if f'{n}_precision' in metrics]
    lines = ['stage    ' + ''.join(f'{c:>11}' for c in cols)]
    for r in rows:
        vals = []
        for c in cols:
            v = metrics[f'{r}_{c}']
            vals.append(f'{int(v):>11d}' if c.startswith('num') else f'{v:>11.4f}')
        lines.append(f'{r:<9}' + ''.join(vals))
    if 'miou_gain' in metrics:
        lines.append(f"mIoU gain (refined - teacher): {metrics['miou_gain']:+.4f}; "
                     f"best-IoU gain: {metrics['best_iou_gain']:+.4f}")
    return '\n'.join(lines)
