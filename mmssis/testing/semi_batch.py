"""Small hand-built batches and detectors for unit tests (no data set needed)."""
from typing import Dict, List, Tuple

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData


def tiny_mask_rcnn_cfg(num_classes: int = 3) -> dict:
    """A small Mask R-CNN (EfficientNet-Lite0 without ImageNet weights, 32-ch FPN)."""
    return dict(
        type='MaskRCNN',
        _scope_='mmdet',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[127.0] * 3, std=[128.0] * 3,
                               bgr_to_rgb=True, pad_mask=True, pad_size_divisor=32),
        backbone=dict(type='mmssis.EfficientNetLite', pretrained=False),
        neck=dict(type='FPN', in_channels=[24, 40, 112, 320], out_channels=32, num_outs=5),
        rpn_head=dict(
            type='RPNHead', in_channels=32, feat_channels=32,
            anchor_generator=dict(type='AnchorGenerator', scales=[4], ratios=[0.5, 1.0, 2.0],
                                  strides=[4, 8, 16, 32, 64]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0] * 4,
                            target_stds=[1.0] * 4),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        roi_head=dict(
            type='StandardRoIHead',
            bbox_roi_extractor=dict(type='SingleRoIExtractor',
                                    roi_layer=dict(type='RoIAlign', output_size=7,
                                                   sampling_ratio=0),
                                    out_channels=32, featmap_strides=[4, 8, 16, 32]),
            bbox_head=dict(type='Shared2FCBBoxHead', in_channels=32, fc_out_channels=64,
                           roi_feat_size=7, num_classes=num_classes,
                           bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                                           target_stds=[0.1, 0.1, 0.2, 0.2]),
                           reg_class_agnostic=False,
                           loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                         loss_weight=1.0),
                           loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
            mask_roi_extractor=dict(type='SingleRoIExtractor',
                                    roi_layer=dict(type='RoIAlign', output_size=14,
                                                   sampling_ratio=0),
                                    out_channels=32, featmap_strides=[4, 8, 16, 32]),
            mask_head=dict(type='FCNMaskHead', num_convs=2, in_channels=32,
                           conv_out_channels=32, num_classes=num_classes,
                           loss_mask=dict(type='CrossEntropyLoss', use_mask=True,
                                          loss_weight=1.0))),
        train_cfg=dict(
            rpn=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3,
                                   min_pos_iou=0.3, match_low_quality=True,
                                   ignore_iof_thr=-1),
                     sampler=dict(type='RandomSampler', num=64, pos_fraction=0.5,
                                  neg_pos_ub=-1, add_gt_as_proposals=False),
                     allowed_border=-1, pos_weight=-1, debug=False),
            rpn_proposal=dict(nms_pre=200, max_per_img=100,
                              nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
            rcnn=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                                    min_pos_iou=0.5, match_low_quality=True,
                                    ignore_iof_thr=-1),
                      sampler=dict(type='RandomSampler', num=64, pos_fraction=0.25,
                                   neg_pos_ub=-1, add_gt_as_proposals=True),
                      mask_size=28, pos_weight=-1, debug=False)),
        test_cfg=dict(
            rpn=dict(nms_pre=200, max_per_img=100, nms=dict(type='nms', iou_threshold=0.7),
                     min_bbox_size=0),
            rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=20, mask_thr_binary=0.5)))


def _square_mask(size: Tuple[int, int], box: Tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros(size, dtype=np.uint8)
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = 1
    return m


def make_sample(img_shape: Tuple[int, int] = (64, 64), with_gt: bool = True,
                homography: np.ndarray = None, num_classes: int = 3) -> DetDataSample:
    """A data sample with metainfo like mmdet's pipeline + preprocessor produce."""
    h, w = img_shape
    hom = np.eye(3, dtype=np.float32) if homography is None else homography.astype(np.float32)
    sample = DetDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
        scale_factor=(1.0, 1.0), homography_matrix=hom, flip=False, flip_direction=None,
        img_id=0, img_path='none.png'))
    inst = InstanceData()
    if with_gt:
        boxes = [(8, 8, 30, 30), (34, 20, 60, 50)]
        inst.bboxes = torch.tensor(boxes, dtype=torch.float32)
        inst.labels = torch.tensor([0, 1 % num_classes])
        inst.masks = BitmapMasks(np.stack([_square_mask((h, w), b) for b in boxes]), h, w)
    else:
        inst.bboxes = torch.zeros((0, 4))
        inst.labels = torch.zeros((0, ), dtype=torch.long)
        inst.masks = BitmapMasks(np.zeros((0, h, w), dtype=np.uint8), h, w)
    sample.gt_instances = inst
    return sample


def make_semi_batch(batch: int = 2, img_shape: Tuple[int, int] = (64, 64),
                    seed: int = 0) -> Tuple[Dict[str, torch.Tensor], Dict[str, List]]:
    """Normalised multi-branch inputs and samples, as ``MultiBranchDataPreprocessor`` emits.

    The unlabelled views share geometry except a horizontal flip on the student view.
    """
    g = torch.Generator().manual_seed(seed)
    h, w = img_shape
    flip = np.array([[-1, 0, w], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    inputs = {k: torch.randn(batch, 3, h, w, generator=g)
              for k in ('sup', 'unsup_teacher', 'unsup_student')}
    samples = {
        'sup': [make_sample(img_shape) for _ in range(batch)],
        'unsup_teacher': [make_sample(img_shape, with_gt=False) for _ in range(batch)],
        'unsup_student': [make_sample(img_shape, with_gt=False, homography=flip)
                          for _ in range(batch)],
    }
    return inputs, samples


FEAT = 32


def tiny_mask2former_cfg(num_classes: int = 3) -> dict:
    """Mask2Former with a 16-channel ResNet-18, 32-d pixel decoder and 2 decoder layers."""
    attn = dict(embed_dims=FEAT, num_heads=4, dropout=0.0, batch_first=True)
    ffn = dict(embed_dims=FEAT, feedforward_channels=2 * FEAT, num_fcs=2, ffn_drop=0.0,
               act_cfg=dict(type='ReLU', inplace=True))
    return dict(
        type='Mask2Former',
        _scope_='mmdet',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
                               pad_size_divisor=32, pad_mask=True, mask_pad_value=0),
        backbone=dict(type='ResNet', depth=18, base_channels=16, num_stages=4,
                      out_indices=(0, 1, 2, 3), frozen_stages=-1,
                      norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                      style='pytorch', init_cfg=None),
        panoptic_head=dict(
            type='Mask2FormerHead',
            in_channels=[16, 32, 64, 128],
            strides=[4, 8, 16, 32],
            feat_channels=FEAT,
            out_channels=FEAT,
            num_things_classes=num_classes,
            num_stuff_classes=0,
            num_queries=10,
            num_transformer_feat_level=3,
            pixel_decoder=dict(
                type='MSDeformAttnPixelDecoder',
                num_outs=3,
                norm_cfg=dict(type='GN', num_groups=8),
                act_cfg=dict(type='ReLU'),
                encoder=dict(
                    num_layers=1,
                    layer_cfg=dict(
                        self_attn_cfg=dict(embed_dims=FEAT, num_heads=4, num_levels=3,
                                           num_points=2, dropout=0.0, batch_first=True),
                        ffn_cfg=ffn)),
                positional_encoding=dict(num_feats=FEAT // 2, normalize=True)),
            enforce_decoder_input_project=False,
            positional_encoding=dict(num_feats=FEAT // 2, normalize=True),
            transformer_decoder=dict(
                return_intermediate=True,
                num_layers=2,
                layer_cfg=dict(self_attn_cfg=attn, cross_attn_cfg=attn, ffn_cfg=ffn),
                init_cfg=None),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0,
                          reduction='mean', class_weight=[1.0] * num_classes + [0.1]),
            loss_mask=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                           loss_weight=5.0),
            loss_dice=dict(type='DiceLoss', use_sigmoid=True, activate=True,
                           reduction='mean', naive_dice=True, eps=1.0, loss_weight=5.0)),
        panoptic_fusion_head=dict(type='MaskFormerFusionHead',
                                  num_things_classes=num_classes, num_stuff_classes=0,
                                  loss_panoptic=None, init_cfg=None),
        train_cfg=dict(
            num_points=256,
            oversample_ratio=3.0,
            importance_sample_ratio=0.75,
            assigner=dict(
                type='HungarianAssigner',
                match_costs=[
                    dict(type='ClassificationCost', weight=2.0),
                    dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
                    dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)
                ]),
            sampler=dict(type='MaskPseudoSampler')),
        test_cfg=dict(panoptic_on=False, semantic_on=False, instance_on=True,
                      max_per_image=10, iou_thr=0.8, filter_low_score=True),
        init_cfg=None)


def gt_teacher_pseudo_instances(teacher, inputs, samples) -> List[InstanceData]:
    """A stand-in for ``teacher_pseudo_instances``: every GT instance of each sample as a
    detection (score 0.99) whose mask logits (+/-10) are the GT mask resized (nearest) from
    the GT frame to the sample's ``img_shape``, as real predictions come."""
    import torch.nn.functional as F
    out = []
    for s in samples:
        gt = torch.from_numpy(s.gt_instances.masks.masks).float()
        h, w = s.metainfo['img_shape'][:2]
        view = F.interpolate(gt[None], size=(h, w), mode='nearest')[0]
        out.append(InstanceData(bboxes=torch.zeros((len(gt), 4)), labels=s.gt_instances.labels,
                                scores=torch.full((len(gt), ), 0.99),
                                mask_logits=view * 20 - 10))
    return out
