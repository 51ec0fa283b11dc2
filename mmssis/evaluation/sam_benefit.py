"""Does SAM help? Per-class mask IoU of teacher vs SAM-refined pseudo-masks against GT.

Each *pair* is one kept teacher pseudo-instance and the SAM refinement of that very
instance, on an image with ground truth. Both masks are scored against the GT instance the
teacher mask matches (greedy, same class, IoU >= ``iou_thr``: :func:`match_instances`); a
pair whose teacher mask matches no GT is not scored (refinement cannot make a wrong
detection right). Per class:

* ``num`` pairs, ``teacher_iou`` / ``refined_iou`` the means of the two IoUs;
* ``gain`` the mean of ``refined - teacher`` and ``gain_se`` its standard error
  (``std / sqrt(num)``), the per-pair spread of a paired comparison;
* ``worse`` the share of pairs SAM made worse (IoU lower by more than 0.01).

:func:`sam_helps` turns that into a decision per class: SAM helps where the gain exceeds
``z`` standard errors (a one-sided paired test; ``z=1.64`` ~ 5 %) on at least
``min_support`` pairs; classes with fewer pairs are undecided (``None``).
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
from torch import Tensor

from mmssis.structures import as_bool_masks, mask_iou, match_instances

__all__ = ['SamBenefit', 'sam_helps', 'refine_decisions', 'format_benefit_table']


@dataclass
class SamBenefit:
    """Accumulates teacher / refined IoU pairs per class; :meth:`compute` gives the table.

    Args:
        num_classes: ``C``.
        iou_thr: IoU of a teacher mask's match with GT (the pair is scored against it).
    """

    num_classes: int
    iou_thr: float = 0.5
    _pairs: List[List[tuple]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pairs = [[] for _ in range(self.num_classes)]

    def update(self, teacher_masks, refined_masks, labels: Tensor, scores: Optional[Tensor],
               gt_masks, gt_labels: Tensor) -> int:
        """Add the pairs of one image (all masks in one frame).

        Args:
            teacher_masks: ``(N, H, W)`` kept teacher masks.
            refined_masks: ``(N, H, W)`` their SAM refinements, same order.
            labels: ``(N,)`` classes; ``scores``: ``(N,)`` (matching order) or None.
            gt_masks: ``(G, H, W)`` ground truth; ``gt_labels``: ``(G,)``.

        Returns:
            The number of pairs scored.
        """
        teacher, refined = as_bool_masks(teacher_masks, 'cpu'), as_bool_masks(refined_masks, 'cpu')
        gt = as_bool_masks(gt_masks, 'cpu')
        if teacher.shape != refined.shape:
            raise ValueError(f'teacher {tuple(teacher.shape)} and refined '
                             f'{tuple(refined.shape)} masks must pair up')
        if len(teacher) == 0 or len(gt) == 0:
            return 0
        match = match_instances(teacher, gt, labels.cpu(), gt_labels.cpu(),
                                None if scores is None else scores.cpu(), self.iou_thr)
        rows = np.nonzero(match.pred_to_gt >= 0)[0]
        if not len(rows):
            return 0
        cols = match.pred_to_gt[rows]
        t_iou = mask_iou(teacher[rows], gt[cols]).diagonal().numpy()
        r_iou = mask_iou(refined[rows], gt[cols]).diagonal().numpy()
        for r, a, b in zip(rows, t_iou, r_iou):
            self._pairs[int(labels[r])].append((float(a), float(b)))
        return len(rows)

    def gather(self) -> 'SamBenefit':
        """All-gather the pairs of every rank (in place; a no-op in one process), so each
        rank computes the same table. Returns ``self``."""
        from mmengine.dist import all_gather_object, get_world_size
        if get_world_size() > 1:
            parts = all_gather_object(self._pairs)
            self._pairs = [sum((p[c] for p in parts), []) for c in range(self.num_classes)]
        return self

    def compute(self) -> Dict[str, np.ndarray]:
        """``num`` (C,) int and ``teacher_iou``, ``refined_iou``, ``gain``, ``gain_se``,
        ``worse`` (C,) float (NaN for classes without pairs)."""
        out = {k: np.full(self.num_classes, np.nan) for k in
               ('teacher_iou', 'refined_iou', 'gain', 'gain_se', 'worse')}
        out['num'] = np.zeros(self.num_classes, np.int64)
        for c, pairs in enumerate(self._pairs):
            if not pairs:
                continue
            a, b = np.asarray(pairs).T
            diff = b - a
            out['num'][c] = len(pairs)
            out['teacher_iou'][c], out['refined_iou'][c] = a.mean(), b.mean()
            out['gain'][c] = diff.mean()
            out['gain_se'][c] = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 \
                else np.inf
            out['worse'][c] = float((diff < -0.01).mean())
        return out


def sam_helps(table: Dict[str, np.ndarray], z: float = 1.64,
              min_support: int = 5) -> List[Optional[bool]]:
    """Per class: ``True`` (SAM's gain is above ``z`` standard errors), ``False`` (it is
    not), ``None`` (fewer than ``min_support`` pairs: undecided)."""
    out: List[Optional[bool]] = []
    for n, gain, se in zip(table['num'], table['gain'], table['gain_se']):
        out.append(None if n < min_support else bool(gain - z * se > 0))
    return out


def refine_decisions(decisions: Sequence[Optional[bool]],
                     refine_undecided: bool = False) -> List[bool]:
    """Per class, whether to refine: where SAM helps, and the undecided classes (``None``)
    only with ``refine_undecided``."""
    return [d is True or (d is None and refine_undecided) for d in decisions]


def format_benefit_table(table: Dict[str, np.ndarray], class_names: Sequence[str],
                         decisions: Optional[Sequence[Optional[bool]]] = None) -> str:
    """A text table: a row per class (pairs, teacher / refined IoU, gain +- se, worse)."""
    head = f'{"class":<14}{"pairs":>6}{"teacher":>9}{"SAM":>8}{"gain":>9}{"+-se":>8}{"worse":>7}'
    lines = [head + ('  SAM helps' if decisions is not None else '')]
    for c, name in enumerate(class_names):
        n = int(table['num'][c])
        if n == 0:
            vals = f'{n:>6}' + f'{"-":>9}{"-":>8}{"-":>9}{"-":>8}{"-":>7}'
        else:
            vals = (f'{n:>6}{table["teacher_iou"][c]:>9.3f}{table["refined_iou"][c]:>8.3f}'
                    f'{table["gain"][c]:>+9.3f}{table["gain_se"][c]:>8.3f}'
                    f'{table["worse"][c]:>7.2f}')
        dec = ''
        if decisions is not None:
            dec = {True: '  yes', False: '  no', None: '  (too few)'}[decisions[c]]
        lines.append(f'{name:<14}' + vals + dec)
    return '\n'.join(lines)
