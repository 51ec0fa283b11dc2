"""Move instance masks between augmented views with mmdet's homography convention.

Coordinate frame (the one mmdet's transforms and :func:`mmdet.structures.bbox.bbox_project`
use): continuous image coordinates ``(x, y)`` in which pixel ``(row i, col j)`` covers the
square ``[j, j + 1) x [i, i + 1)``; its centre is ``(j + 0.5, i + 0.5)`` and the image spans
``[0, W] x [0, H]``. Boxes are ``xyxy`` over pixel *edges* (a one-pixel box at column ``j`` is
``[j, j + 1]``). In this frame ``RandomFlip`` is ``x -> W - x``, ``Resize`` is
``x -> s_x * x`` and ``RandomCrop`` is ``x -> x - offset``, accumulated (left-multiplied) into
``data_sample.homography_matrix``, a float32 ``(3, 3)`` array mapping *original image*
coordinates to *this view's* coordinates. ``Pad`` (bottom/right) leaves the frame unchanged,
so masks of a view may be given at its ``img_shape`` or at any padded size.

Warping samples each destination pixel centre ``(j + 0.5, i + 0.5)`` at
``H^-1 (j + 0.5, i + 0.5, 1)`` in the source. :func:`torch.nn.functional.grid_sample` with
``align_corners=False`` uses exactly this frame (normalised ``-1``/``+1`` are the outer
pixel *edges*), so flips and integer translations are reproduced bit-exactly and resizes
match cv2's half-pixel ``INTER_LINEAR`` sampling. (mmdet resizes ``BitmapMasks`` with cv2
``INTER_NEAREST``, which is *not* half-pixel aligned: expect up to one pixel of disagreement
at mask borders after a resize.)
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.structures.bbox import BaseBoxes, bbox_project
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import BaseDataElement, InstanceData
from torch import Tensor

# One implementation of mask -> box (mmdet's x2 = last column + 1) for the whole package.
from mmssis.sam.prompts import masks_to_boxes  # noqa: F401,E402

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
        return torch.from_numpy(np.asarray(masks.masks)).to(device=device, dtype=torch.bool)
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
                           project_bboxes: bool = True) -> InstanceData:
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
        project_bboxes (bool): Also project ``bboxes`` (if present) with mmdet's
            ``bbox_project`` and clip them to the student's ``img_shape``, so every field
            ends up in the same frame. Defaults to True.

    Returns:
        InstanceData: A new instance container; ``masks`` has the input's type
        (``BitmapMasks`` or a tensor of the input dtype), other fields are shared with
        ``instances`` except the projected ``bboxes``.
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
        if key == 'masks':
            value = new_masks
        elif key == 'bboxes' and project_bboxes:
            value = _project_bboxes(value, homography, (img_h, img_w))
        out[key] = value
    return out


def _project_bboxes(bboxes: Union[Tensor, BaseBoxes], homography: Tensor,
                    img_shape: Tuple[int, int]) -> Union[Tensor, BaseBoxes]:
    """Project ``xyxy`` boxes with ``homography`` and clip them to ``img_shape``."""
    if isinstance(bboxes, BaseBoxes):
        projected = bboxes.clone()
        projected.project_(homography.to(projected.device, projected.dtype))
        projected.clip_(img_shape)
        return projected
    return bbox_project(bboxes, homography.to(bboxes.device, bboxes.dtype), img_shape)
