"""Teacher pseudo-instances with soft masks, per detector family.

Both extractors return, per image of the teacher view, an ``InstanceData`` with

* ``bboxes`` (N, 4) float: xyxy in the teacher view's pixel frame (``img_shape``),
* ``labels`` (N,) long, ``scores`` (N,) float: class index and confidence,
* ``mask_logits`` (N, H, W) float: per-instance mask logits at the teacher ``img_shape``
  (``sigmoid(mask_logits) >= 0.5`` is the binary mask).

The soft masks are kept because S4M samples SAM's point prompts from them.
"""
from typing import List

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.structures import SampleList

#: Probabilities are clamped to ``[_EPS, 1 - _EPS]`` before ``torch.logit``.
_EPS = 1e-4


@torch.no_grad()
def maskrcnn_pseudo_instances(teacher: torch.nn.Module, batch_inputs: Tensor,
                              batch_data_samples: SampleList) -> List[InstanceData]:
    """Pseudo-instances from a two-stage mask detector (Mask R-CNN family).

    mmdet's ``FCNMaskHead`` pastes soft masks (probability x 255, uint8) when
    ``mask_thr_binary < 0``; the teacher's test config is switched to that for this call only.

    Args:
        teacher: An mmdet ``TwoStageDetector`` with a mask head, in eval mode.
        batch_inputs: (B, 3, H_pad, W_pad) normalised teacher-view images.
        batch_data_samples: The teacher-view data samples (``img_shape`` etc.).

    Returns:
        One ``InstanceData`` per image, fields as in the module docstring.
    """
    rcnn_cfg = teacher.roi_head.test_cfg
    old_thr = rcnn_cfg.mask_thr_binary
    rcnn_cfg.mask_thr_binary = -1
    try:
        results = teacher.predict(batch_inputs, batch_data_samples, rescale=False)
    finally:
        rcnn_cfg.mask_thr_binary = old_thr
    out = []
    for sample in results:
        pred = sample.pred_instances
        prob = _at_img_shape(pred.masks.float() / 255.0, sample.metainfo['img_shape'][:2])
        out.append(InstanceData(bboxes=pred.bboxes.float(), labels=pred.labels,
                                scores=pred.scores, mask_logits=torch.logit(prob, eps=_EPS)))
    return out


def _at_img_shape(masks: Tensor, img_shape) -> Tensor:
    """``(N, H', W')`` masks pasted by mmdet -> ``(N, h, w)`` at the view's ``img_shape``.

    With ``rescale=False`` mmdet's ``FCNMaskHead`` pastes on a canvas of
    ``round(ori_shape * scale_factor)``: the resized image *before* a crop (LSJ), while the
    boxes, and so the pasted masks, are in the cropped view's frame. The view is the
    canvas' top-left ``img_shape``; a canvas smaller than it (rounding) is zero-padded.
    """
    h, w = int(img_shape[0]), int(img_shape[1])
    masks = masks[:, :h, :w]
    if masks.shape[1:] != (h, w):
        out = masks.new_zeros((masks.shape[0], h, w))
        out[:, :masks.shape[1], :masks.shape[2]] = masks
        masks = out
    return masks


@torch.no_grad()
def mask2former_pseudo_instances(teacher: torch.nn.Module, batch_inputs: Tensor,
                                 batch_data_samples: SampleList) -> List[InstanceData]:
    """Pseudo-instances from a MaskFormer/Mask2Former teacher, as in S4M.

    Every query becomes a candidate: its class is the argmax of the per-query class softmax
    over the non-background classes, its score that probability, its mask the query's mask
    logits (not mmdet's top-k instance post-processing).

    Args:
        teacher: An mmdet ``MaskFormer``/``Mask2Former`` in eval mode.
        batch_inputs: (B, 3, H_pad, W_pad) normalised teacher-view images.
        batch_data_samples: The teacher-view data samples.

    Returns:
        One ``InstanceData`` per image with Q candidates (filter by score afterwards).
    """
    feats = teacher.extract_feat(batch_inputs)
    # (B, Q, C + 1) class logits and (B, Q, H_pad, W_pad) mask logits at batch_input_shape.
    mask_cls, mask_pred = teacher.panoptic_head.predict(feats, batch_data_samples)
    probs = mask_cls.softmax(-1)[..., :-1]
    out = []
    for i, sample in enumerate(batch_data_samples):
        h, w = sample.metainfo['img_shape'][:2]
        scores, labels = probs[i].max(-1)
        logits = mask_pred[i, :, :h, :w].float()
        out.append(InstanceData(bboxes=logits.new_zeros((logits.shape[0], 4)), labels=labels,
                                scores=scores, mask_logits=logits))
    return out


def teacher_pseudo_instances(teacher: torch.nn.Module, batch_inputs: Tensor,
                             batch_data_samples: SampleList) -> List[InstanceData]:
    """Dispatch on the teacher's family (``panoptic_head`` => MaskFormer family)."""
    if hasattr(teacher, 'panoptic_head'):
        return mask2former_pseudo_instances(teacher, batch_inputs, batch_data_samples)
    if hasattr(teacher, 'roi_head') and getattr(teacher.roi_head, 'with_mask', False):
        return maskrcnn_pseudo_instances(teacher, batch_inputs, batch_data_samples)
    raise TypeError(f'{type(teacher).__name__} is not a supported mask detector: mmssis '
                    'pseudo-labels need a Mask R-CNN-style roi_head with a mask head or a '
                    'MaskFormer/Mask2Former panoptic_head')
