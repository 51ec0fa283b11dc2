"""Pure mask, box and frame operations shared by the whole package.

Nothing here imports another mmssis module (models, SAM, hooks and evaluation import this
module, never the other way round); the only dependencies are torch, numpy and mmdet /
mmengine data structures.

* masks <-> boxes: :func:`masks_to_boxes`, :func:`boxes_to_masks`;
* mask IoU: :func:`mask_iou` (pairwise), :func:`paired_mask_iou` (corresponding);
* greedy class-aware matching of predicted to ground-truth masks: :func:`match_instances`;
* mask containers as tensors: :func:`as_bool_masks`;
* warps between augmented views: :func:`sample_homography`, :func:`project_masks`,
  :func:`project_instance_masks`;
* de-normalisation of a preprocessed batch: :func:`denormalize_views`;
* COCO RLE of a mask: :func:`encode_rle`.

Coordinate frame (the one mmdet's transforms and :func:`mmdet.structures.bbox.bbox_project`
use): continuous image coordinates ``(x, y)`` in which pixel ``(row i, col j)`` covers the
square ``[j, j + 1) x [i, i + 1)``; its centre is ``(j + 0.5, i + 0.5)`` and the image spans
``[0, W] x [0, H]``. Boxes are ``xyxy`` over pixel *edges* (a one-pixel box at column ``j`` is
``[j, j + 1]``; ``x2 = last column + 1`` as ``BitmapMasks.get_bboxes``). In this frame
``RandomFlip`` is ``x -> W - x``, ``Resize`` is ``x -> s_x * x`` and ``RandomCrop`` is
``x -> x - offset``, accumulated (left-multiplied) into ``data_sample.homography_matrix``, a
float32 ``(3, 3)`` array mapping *original image* coordinates to *this view's* coordinates.
``Pad`` (bottom/right) leaves the frame unchanged, so masks of a view may be given at its
``img_shape`` or at any padded size.

Warping samples each destination pixel centre ``(j + 0.5, i + 0.5)`` at
``H^-1 (j + 0.5, i + 0.5, 1)`` in the source. :func:`torch.nn.functional.grid_sample` with
``align_corners=False`` uses exactly this frame (normalised ``-1``/``+1`` are the outer
pixel *edges*), so flips and integer translations are reproduced bit-exactly and resizes
match cv2's half-pixel ``INTER_LINEAR`` sampling. (mmdet resizes ``BitmapMasks`` with cv2
``INTER_NEAREST``, which is *not* half-pixel aligned: expect up to one pixel of disagreement
at mask borders after a resize.)
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import BaseDataElement, InstanceData
from torch import Tensor

HomographyLike = Union[Tensor, np.ndarray]


def _as_homography(matrix: Optional[HomographyLike], device: torch.device) -> Tensor:
    """Return ``matrix`` as a float64 ``(3, 3)`` tensor (identity when None).

    float64 because the inverse of an accumulated float32 homography loses ~1e-4 px on
    large images, enough to flip nearest-neighbour ties.
    """
    if matrix is None:
        return torch.eye(3, dtype=torch.float64, device=device)
    if isinstance(matrix, np.ndarray):
        matrix = torch.from_numpy(np.asarray(matrix))
    matrix = matrix.to(device=device, dtype=torch.float64)
    if matrix.shape != (3, 3):
        raise ValueError(f'homography must be (3, 3), got {tuple(matrix.shape)}')
    return matrix


class MissingHomographyError(ValueError):
    """A geometrically transformed sample carries no ``homography_matrix``."""


def _derived_homography(meta: dict) -> Optional[Tensor]:
    """The ``original -> view`` map of a sample whose pipeline did not pack one.

    Only two cases are exact without ``homography_matrix``: the view *is* the original
    image (identity), or the view is the original rescaled by mmdet's ``Resize`` and
    nothing else (``diag(scale_factor)``: no flip and ``img_shape`` equal to the rounded
    rescaled ``ori_shape``, so no crop). Anything else returns None.
    """
    if meta.get('flip', False):
        return None
    img_shape = meta.get('img_shape')
    ori_shape = meta.get('ori_shape')
    if img_shape is None or ori_shape is None:
        return None
    img_h, img_w = (int(v) for v in img_shape[:2])
    ori_h, ori_w = (int(v) for v in ori_shape[:2])
    scale = meta.get('scale_factor')
    sx, sy = (1.0, 1.0) if scale is None else (float(scale[0]), float(scale[1]))
    if scale is None and (img_h, img_w) != (ori_h, ori_w):
        return None
    # mmcv's imrescale/imresize round the rescaled size to the nearest pixel.
    if abs(ori_w * sx - img_w) > 1.0 or abs(ori_h * sy - img_h) > 1.0:
        return None
    return torch.diag(torch.tensor([sx, sy, 1.0], dtype=torch.float64))


def sample_homography(data_sample: BaseDataElement,
                      device: Union[str, torch.device] = 'cpu') -> Tensor:
    """Homography ``original image -> view`` of a data sample, float64 ``(3, 3)``.

    ``homography_matrix`` when the pipeline packed it (``PackDetInputs(meta_keys=(...,
    'homography_matrix'))``). Without it, only an untransformed view (identity) or a plain
    ``Resize`` (``diag(scale_factor)``) can be mapped exactly; a flipped, cropped or
    otherwise transformed view raises instead of being treated as the original image.

    Raises:
        MissingHomographyError: the sample is transformed and has no ``homography_matrix``.
    """
    meta = data_sample.metainfo
    matrix = meta.get('homography_matrix')
    if matrix is None:
        matrix = _derived_homography(meta)
        if matrix is None:
            raise MissingHomographyError(
                f"sample {meta.get('img_path', meta.get('img_id'))!r} was transformed "
                f"(flip={meta.get('flip')}, img_shape={meta.get('img_shape')}, "
                f"ori_shape={meta.get('ori_shape')}, scale_factor={meta.get('scale_factor')}) "
                "but carries no 'homography_matrix': add it to the meta_keys of the "
                "pipeline's PackDetInputs so that masks and SAM targets can be mapped between the original image and this view")
    return _as_homography(matrix, torch.device(device))


def relative_homography(src_sample: BaseDataElement, dst_sample: BaseDataElement,
                        device: Union[str, torch.device] = 'cpu') -> Tensor:
    """Homography mapping ``src_sample``'s view coordinates to ``dst_sample``'s view.

    Both samples must be augmentations of the same original image:
    ``H = H_dst @ inv(H_src)`` (view_src -> original -> view_dst), float64 ``(3, 3)``.
    """
    h_src = sample_homography(src_sample, device)
    h_dst = sample_homography(dst_sample, device)
    return h_dst @ torch.linalg.inv(h_src)


def _sampling_grid(homography: Tensor, src_shape: Tuple[int, int],
                   dst_shape: Tuple[int, int]) -> Tensor:
    """``grid_sample`` grid, ``(1, H_dst, W_dst, 2)`` float32, for a ``src -> dst`` warp.

    Destination pixel centres ``(j + 0.5, i + 0.5)`` are mapped back to the source with
    ``inv(homography)`` and normalised with ``align_corners=False`` (``-1`` = left/top edge
    at coordinate 0, ``+1`` = right/bottom edge at ``W_src``/``H_src``).
    """
    h_dst, w_dst = dst_shape
    h_src, w_src = src_shape
    inv = torch.linalg.inv(homography)
    ys = torch.arange(h_dst, dtype=torch.float64, device=inv.device) + 0.5
    xs = torch.arange(w_dst, dtype=torch.float64, device=inv.device) + 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing='ij')
    pts = torch.stack([xx, yy, torch.ones_like(xx)], dim=-1)  # (H_dst, W_dst, 3)
    src = pts @ inv.T
    # Points mapped to infinity (w == 0) only arise for degenerate perspective maps;
    # pushing them far outside makes grid_sample's zero padding apply.
    w = src[..., 2:3]
    w = torch.where(w.abs() < 1e-12, torch.full_like(w, 1e-12), w)
    src_xy = src[..., :2] / w
    scale = torch.tensor([2.0 / w_src, 2.0 / h_src], dtype=torch.float64, device=inv.device)
    grid = src_xy * scale - 1.0
    return grid.clamp(-1e4, 1e4).to(torch.float32).unsqueeze(0)


def project_masks(masks: Tensor,
                  homography: HomographyLike,
                  dst_shape: Sequence[int],
                  mode: str = 'bilinear',
                  threshold: float = 0.5,
                  chunk_size: int = 64) -> Tensor:
    """Warp instance masks from a source view to a destination view.

    Args:
        masks (Tensor): ``(N, H_src, W_src)`` masks in the source view's pixel frame
            (origin at the top-left, any bottom/right padding allowed). bool/integer masks
            are treated as binary (output values in {0, 1}); floating-point masks as soft.
        homography (Tensor | np.ndarray): ``(3, 3)`` map from source-view coordinates to
            destination-view coordinates (mmdet corner/edge convention, see module doc).
        dst_shape (Sequence[int]): ``(H_dst, W_dst)`` of the output.
        mode (str): ``'nearest'`` or ``'bilinear'`` sampling. Defaults to 'bilinear'.
        threshold (float): For binary inputs the bilinear result is binarised with
            ``>= threshold``. Ignored for floating-point inputs. Defaults to 0.5.
        chunk_size (int): Masks warped per ``grid_sample`` call, to bound the float32
            working memory. Defaults to 64.

    Returns:
        Tensor: ``(N, H_dst, W_dst)`` on the input's device, same dtype as ``masks``;
        destination pixels that map outside the source are 0.
    """
    if masks.dim() != 3:
        raise ValueError(f'masks must be (N, H, W), got {tuple(masks.shape)}')
    if mode not in ('nearest', 'bilinear'):
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    h_dst, w_dst = int(dst_shape[0]), int(dst_shape[1])
    num, h_src, w_src = masks.shape
    soft = masks.dtype.is_floating_point
    out = masks.new_zeros((num, h_dst, w_dst))
    if num == 0 or h_dst == 0 or w_dst == 0 or h_src == 0 or w_src == 0:
        return out
    grid = _sampling_grid(_as_homography(homography, masks.device), (h_src, w_src),
                          (h_dst, w_dst))
    for start in range(0, num, chunk_size):
        # Masks as channels of one image: a single grid serves the whole chunk.
        chunk = masks[start:start + chunk_size].unsqueeze(0).to(torch.float32)
        warped = F.grid_sample(chunk, grid, mode=mode, padding_mode='zeros',
                               align_corners=False)[0]
        if soft:
            out[start:start + chunk_size] = warped.to(masks.dtype)
        else:
            out[start:start + chunk_size] = (warped >= threshold).to(masks.dtype)
    return out


def _masks_as_tensor(masks: Union[BitmapMasks, Tensor], device: torch.device) -> Tensor:
    """``(N, H, W)`` tensor view of ``BitmapMasks`` (as bool) or a tensor (unchanged)."""
    if isinstance(masks, BitmapMasks):
        return as_bool_masks(masks, device)
    if isinstance(masks, Tensor):
        return masks
    raise TypeError(f'masks must be BitmapMasks or Tensor, got {type(masks).__name__}')


def _pad_bottom_right(masks: Tensor, shape: Sequence[int]) -> Tensor:
    """Zero-pad ``(N, H, W)`` masks at the bottom/right to ``shape = (H', W')``."""
    h_pad, w_pad = int(shape[0]) - masks.shape[1], int(shape[1]) - masks.shape[2]
    if h_pad < 0 or w_pad < 0:
        raise ValueError(f'cannot pad masks of {tuple(masks.shape[1:])} to {tuple(shape)}')
    if h_pad == 0 and w_pad == 0:
        return masks
    out = masks.new_zeros((masks.shape[0], int(shape[0]), int(shape[1])))
    out[:, :masks.shape[1], :masks.shape[2]] = masks
    return out


def project_instance_masks(instances: InstanceData,
                           teacher_sample: BaseDataElement,
                           student_sample: BaseDataElement,
                           mode: str = 'bilinear',
                           pad_to_batch_input: bool = False,
                           with_boxes: bool = True) -> InstanceData:
    """Project pseudo instances predicted on the teacher view into the student view.

    ``H = student.homography_matrix @ inv(teacher.homography_matrix)`` maps teacher-view to
    student-view coordinates (both views are augmentations of the same original image).

    Output frame/shape: masks are warped to the student's ``img_shape`` (the augmented image
    before batch padding). That is what Mask R-CNN style heads expect (mmdet keeps
    ``gt_masks`` at ``img_shape``; ``mask_target`` crops them per RoI). Heads that compare
    masks with predictions over the padded batch tensor (Mask2Former/MaskFormer: mmdet
    configs set ``DetDataPreprocessor(pad_mask=True)`` to pad ``gt_masks`` to
    ``batch_input_shape``, but that padding runs before pseudo labels exist) need
    ``pad_to_batch_input=True``: the warp is still done at ``img_shape`` and the result
    zero-padded at the bottom/right, so padded pixels never receive mask content that lies
    outside the student image.

    Args:
        instances (InstanceData): Teacher predictions on the teacher view (e.g. with
            ``rescale=False``) with ``masks`` as ``BitmapMasks`` or an ``(N, H_t, W_t)``
            tensor at the teacher's ``img_shape`` or padded size.
        teacher_sample (BaseDataElement): Teacher data sample (``homography_matrix``).
        student_sample (BaseDataElement): Student data sample (``homography_matrix``,
            ``img_shape`` and, for padding, ``batch_input_shape``).
        mode (str): ``'nearest'`` or ``'bilinear'``, see :func:`project_masks`.
        pad_to_batch_input (bool): Zero-pad the masks to the student's
            ``batch_input_shape``. Defaults to False.
        with_boxes (bool): Set ``bboxes`` (``False``: leave them out, for callers that
            change the masks further and compute boxes once at the end). Defaults to True.

    Returns:
        InstanceData: A new instance container; ``masks`` has the input's type
        (``BitmapMasks`` or a tensor of the input dtype), ``bboxes`` (``with_boxes``) are the
        boxes of the warped masks (:func:`masks_to_boxes`, student frame; a box projected as a box would
        not be tight after a crop), other fields are shared with ``instances``.
    """
    masks = instances.masks
    device = masks.device if isinstance(masks, Tensor) else torch.device('cpu')
    homography = relative_homography(teacher_sample, student_sample, device)
    img_h, img_w = student_sample.metainfo['img_shape'][:2]

    warped = project_masks(_masks_as_tensor(masks, device), homography, (img_h, img_w), mode)
    if pad_to_batch_input:
        warped = _pad_bottom_right(warped, student_sample.metainfo['batch_input_shape'][:2])
    if isinstance(masks, BitmapMasks):
        new_masks = BitmapMasks(warped.cpu().numpy().astype(np.uint8), *warped.shape[1:])
    else:
        new_masks = warped

    out = InstanceData(metainfo=instances.metainfo)
    for key, value in instances.items():
        if key == 'bboxes' and not with_boxes:
            continue
        out[key] = new_masks if key == 'masks' else value
    if with_boxes:
        out.bboxes = masks_to_boxes(warped)
    return out



# ----------------------------------------------------------------------------------------
# masks, boxes, IoU, matching
def masks_to_boxes(masks: Tensor, fallback: Optional[Tensor] = None) -> Tensor:
    """Tight ``xyxy`` boxes around binary masks, in mmdet's pixel-edge convention.

    ``x2``/``y2`` are one past the last foreground column/row (as
    ``BitmapMasks.get_bboxes``), so a single pixel at ``(row i, col j)`` gives
    ``[j, i, j + 1, i + 1]``. :func:`torchvision.ops.masks_to_boxes` is not reused: it
    returns inclusive ``x2 = last column`` (pixel-index convention, which would shrink
    every box by one pixel next to ``bbox_project``) and older torchvision versions
    raise on empty masks.

    Args:
        masks: ``(N, H, W)``; any nonzero value is foreground (binarise soft masks first).
        fallback: Optional ``(N, 4)`` boxes used for empty masks (else zeros).

    Returns:
        ``(N, 4)`` float32 boxes ``(x1, y1, x2, y2)``.
    """
    if masks.dim() != 3:
        raise ValueError(f'masks must be (N, H, W), got {tuple(masks.shape)}')
    num, height, width = masks.shape
    boxes = torch.zeros((num, 4), dtype=torch.float32, device=masks.device)
    if num == 0:
        return boxes
    fg = masks != 0
    rows = fg.any(dim=2)  # (N, H)
    cols = fg.any(dim=1)  # (N, W)
    nonempty = rows.any(dim=1)
    if height and width:
        row_idx = torch.arange(height, device=masks.device)
        col_idx = torch.arange(width, device=masks.device)
        # First/last occupied index via masked min/max over the index ranges.
        y1 = torch.where(rows, row_idx, height).amin(dim=1)
        y2 = torch.where(rows, row_idx, -1).amax(dim=1) + 1
        x1 = torch.where(cols, col_idx, width).amin(dim=1)
        x2 = torch.where(cols, col_idx, -1).amax(dim=1) + 1
        stacked = torch.stack([x1, y1, x2, y2], dim=1).to(torch.float32)
        boxes[nonempty] = stacked[nonempty]
    if fallback is not None and not nonempty.all():
        boxes[~nonempty] = fallback.to(boxes)[~nonempty]
    return boxes


def boxes_to_masks(boxes: Tensor, size: Tuple[int, int]) -> Tensor:
    """Filled box masks: ``(N, 4)`` xyxy pixels -> ``(N, H, W)`` bool.

    Pixel ``(r, c)`` is inside when its centre ``(c + .5, r + .5)`` lies in the box.
    """
    h, w = size
    b = boxes.float()
    xs = torch.arange(w, device=b.device, dtype=torch.float32) + 0.5
    ys = torch.arange(h, device=b.device, dtype=torch.float32) + 0.5
    in_x = (xs[None] >= b[:, 0:1]) & (xs[None] <= b[:, 2:3])  # (N, W)
    in_y = (ys[None] >= b[:, 1:2]) & (ys[None] <= b[:, 3:4])  # (N, H)
    return in_y[:, :, None] & in_x[:, None, :]


def loosen_boxes(boxes: Tensor, margin: float, size: Tuple[int, int]) -> Tensor:
    """``(N, 4)`` xyxy boxes grown by ``margin`` pixels on each side, clamped to ``size``.

    Args:
        boxes: ``(N, 4)`` xyxy pixels.
        margin: Pixels added on each side (same frame as ``boxes``).
        size: ``(H, W)`` of the image the boxes live in.

    Returns:
        ``(N, 4)`` float boxes, ``0 <= x <= W`` and ``0 <= y <= H``.
    """
    h, w = size
    out = boxes.float() + boxes.new_tensor([-margin, -margin, margin, margin], dtype=torch.float32)
    out[:, 0::2] = out[:, 0::2].clamp(0, w)
    out[:, 1::2] = out[:, 1::2].clamp(0, h)
    return out


def paired_mask_iou(masks_a: Tensor, masks_b: Tensor) -> Tensor:
    """IoU of corresponding masks: ``(N, H, W)`` x ``(N, H, W)`` bool -> ``(N,)``.

    Two empty masks give 0.
    """
    inter = (masks_a & masks_b).flatten(1).sum(1).float()
    union = (masks_a | masks_b).flatten(1).sum(1).float().clamp(min=1)
    return inter / union


def mask_iou(masks_a: Tensor, masks_b: Tensor) -> Tensor:
    """Pairwise IoU of two sets of binary masks in the same pixel frame.

    Args:
        masks_a: (N, H, W) bool.
        masks_b: (M, H, W) bool.

    Returns:
        (N, M) float IoU; 0 where both masks are empty.

    Raises:
        ValueError: The two sets are not in the same frame (``H, W`` differ).
    """
    if masks_a.shape[1:] != masks_b.shape[1:]:
        raise ValueError(f'masks in different frames: {tuple(masks_a.shape[1:])} vs '
                         f'{tuple(masks_b.shape[1:])}')
    masks_b = masks_b.to(masks_a.device)
    a = masks_a.flatten(1).float()
    b = masks_b.flatten(1).float()
    inter = a @ b.t()
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return inter / union.clamp(min=1.0)


@dataclass
class ImageMatch:
    """Matching result of one image.

    Attributes:
        num_pred: Number of predicted instances ``P``.
        num_gt: Number of GT instances ``G``.
        matched_ious: ``(TP,)`` IoUs of the matched pairs.
        best_ious: ``(P,)`` best IoU of each prediction with any (allowed) GT.
        pred_to_gt: ``(P,)`` index of the matched GT, ``-1`` if unmatched.
    """

    num_pred: int
    num_gt: int
    matched_ious: np.ndarray
    best_ious: np.ndarray
    pred_to_gt: np.ndarray

    @property
    def num_tp(self) -> int:
        return int(self.matched_ious.size)


def match_instances(pred_masks: Tensor, gt_masks: Tensor,
                    pred_labels: Optional[Tensor] = None, gt_labels: Optional[Tensor] = None,
                    pred_scores: Optional[Tensor] = None, iou_thr: float = 0.5,
                    class_aware: bool = True) -> ImageMatch:
    """Greedy one-to-one matching of predicted to GT masks of one image.

    Args:
        pred_masks: ``(P, H, W)`` predicted masks.
        gt_masks: ``(G, H, W)`` GT masks in the same frame.
        pred_labels: ``(P,)`` class indices (needed when ``class_aware``).
        gt_labels: ``(G,)`` class indices (needed when ``class_aware``).
        pred_scores: ``(P,)`` confidences; predictions are matched in decreasing score
            order (input order when None).
        iou_thr: Minimum IoU of a match.
        class_aware: Only match (and score ``best_ious`` against) GT of the same class.

    Returns:
        An :class:`ImageMatch`.
    """
    num_pred, num_gt = int(pred_masks.shape[0]), int(gt_masks.shape[0])
    pred_to_gt = np.full(num_pred, -1, dtype=np.int64)
    if num_pred == 0 or num_gt == 0:
        return ImageMatch(num_pred, num_gt, np.zeros(0, np.float32),
                          np.zeros(num_pred, np.float32), pred_to_gt)
    iou = mask_iou(pred_masks.bool(), gt_masks.bool()).cpu()
    # Pairs that may match: all, or same-class only (-1 keeps other classes out even at
    # iou_thr <= 0; best_ious reports 0 for them).
    allowed = torch.ones_like(iou, dtype=torch.bool)
    if class_aware:
        if pred_labels is None or gt_labels is None:
            raise ValueError('class_aware matching needs pred_labels and gt_labels')
        allowed = pred_labels.cpu().reshape(-1, 1) == gt_labels.cpu().reshape(1, -1)
        iou = torch.where(allowed, iou, torch.zeros_like(iou))
    iou_np = iou.numpy()
    match_iou = np.where(allowed.numpy(), iou_np, -1.0)
    order = (np.argsort(-pred_scores.detach().cpu().numpy(), kind='stable')
             if pred_scores is not None else np.arange(num_pred))
    gt_free = np.ones(num_gt, dtype=bool)
    matched = []
    for p in order:
        cand = np.where(gt_free, match_iou[p], -1.0)
        g = int(cand.argmax())
        if cand[g] >= iou_thr:
            gt_free[g] = False
            pred_to_gt[p] = g
            matched.append(iou_np[p, g])
    return ImageMatch(num_pred, num_gt, np.asarray(matched, np.float32),
                      iou_np.max(axis=1).astype(np.float32), pred_to_gt)


def as_bool_masks(masks, device: Optional[torch.device] = None) -> Tensor:
    """Any mask container as an ``(N, H, W)`` bool tensor.

    Args:
        masks: ``BitmapMasks`` / ``PolygonMasks`` (through their ``to_tensor``), a tensor or
            an array of shape ``(N, H, W)``.
        device: Target device (default: the tensor's own, CPU otherwise).

    Returns:
        ``(N, H, W)`` bool tensor.
    """
    if isinstance(masks, Tensor):
        return masks.to(device if device is not None else masks.device).bool()
    if hasattr(masks, 'to_tensor'):  # mmdet BitmapMasks / PolygonMasks
        return masks.to_tensor(torch.bool, device if device is not None else 'cpu')
    return torch.as_tensor(np.asarray(masks), dtype=torch.bool, device=device)


def align_to_gt_frame(masks: Tensor, sample: BaseDataElement, gt_frame: Sequence[int]
                      ) -> Tuple[Tensor, Tuple[int, int]]:
    """Bring masks of a view into the frame of the sample's ground-truth masks.

    The ground truth of a test-style sample is at the view's ``img_shape`` (annotations
    loaded before ``Resize``), at the original ``ori_shape`` (loaded after it, as mmdet's
    test pipelines do) or padded bottom/right beyond ``img_shape`` (``Pad`` after loading).

    Args:
        masks: ``(N, h, w)`` bool masks at the view's ``img_shape`` (or padded).
        sample: The view's data sample (``img_shape``, ``ori_shape``, homography).
        gt_frame: ``(H, W)`` of the ground-truth masks.

    Returns:
        ``(masks, (h, w))``: the masks in the comparison frame and the top-left crop of
        the ground truth to compare with (``gt_frame`` unless the ground truth is padded).

    Raises:
        ValueError: ``gt_frame`` is none of the three.
        MissingHomographyError: The view is transformed beyond a resize and its sample
            has no ``homography_matrix``.
    """
    meta = sample.metainfo
    img_shape = tuple(int(v) for v in meta['img_shape'][:2])
    ori_shape = tuple(int(v) for v in meta.get('ori_shape', img_shape)[:2])
    gt_frame = tuple(int(v) for v in gt_frame[:2])
    masks = masks.bool()[:, :img_shape[0], :img_shape[1]]
    if gt_frame == img_shape:
        return masks, gt_frame
    if gt_frame == ori_shape:
        to_original = torch.linalg.inv(sample_homography(sample, masks.device))
        return project_masks(masks, to_original, ori_shape, mode='bilinear').bool(), gt_frame
    if gt_frame[0] >= img_shape[0] and gt_frame[1] >= img_shape[1]:
        return masks, img_shape
    raise ValueError(f'ground-truth masks of size {gt_frame} match neither the view shape '
                     f'{img_shape}, the original shape {ori_shape} nor a padding of the view')


def encode_rle(mask: np.ndarray) -> Tuple[dict, float, List[float]]:
    """COCO compressed RLE of one mask, with its area and ``xywh`` box (pycocotools).

    Args:
        mask: ``(H, W)`` bool / 0-1 array.

    Returns:
        ``(rle, area, bbox)``: ``rle`` as a json-ready dict (``size`` ``[H, W]`` ints,
        ``counts`` str), ``area`` in pixels, ``bbox`` ``[x, y, w, h]`` floats.
    """
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask).astype(np.uint8)))
    area = float(mask_utils.area(rle))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    return dict(size=[int(v) for v in rle['size']],
                counts=rle['counts'].decode('ascii')), area, bbox


# ----------------------------------------------------------------------------------------
# batches
def denormalize_views(batch_inputs: Tensor, img_shapes: Sequence[Sequence[int]],
                      mean: Optional[Sequence[float]] = None,
                      std: Optional[Sequence[float]] = None,
                      channels: str = 'rgb') -> List[np.ndarray]:
    """Recover the uint8 RGB images of a normalised batch, cropped to each ``img_shape``.

    Args:
        batch_inputs: ``(B, 3, H_pad, W_pad)`` tensor, ``(img - mean) / std``.
        img_shapes: ``B`` ``(h_i, w_i)`` (each sample's ``img_shape``; the rest is padding).
        mean: Per-channel mean of the normalisation (``None``: not normalised).
        std: Per-channel std of the normalisation (``None``: not normalised).
        channels: Channel order of ``batch_inputs``: ``'rgb'`` or ``'bgr'``.

    Returns:
        ``B`` arrays of shape ``(h_i, w_i, 3)``, uint8, RGB.
    """
    if channels not in ('rgb', 'bgr'):
        raise ValueError(f"channels must be 'rgb' or 'bgr', got {channels!r}")
    x = batch_inputs.detach().float()
    if std is not None:
        x = x * torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    if mean is not None:
        x = x + torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    out = []
    for img, shape in zip(x, img_shapes):
        h, w = int(shape[0]), int(shape[1])
        arr = img[:, :h, :w].clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0)
        arr = arr.cpu().numpy()
        out.append(np.ascontiguousarray(arr if channels == 'rgb' else arr[..., ::-1]))
    return out
