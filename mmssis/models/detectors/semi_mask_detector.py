"""Semi-supervised instance segmentation on top of mmdet's ``SemiBaseDetector``.

mmdet's semi-supervised detectors project pseudo *boxes* only and drop masks. This detector
carries teacher pseudo-*masks* into the student view, which is what S4M / Guided
Distillation train on, and offers the hook points the S4M parts plug into:

1. the teacher predicts on the weak view (``unsup_teacher`` branch) with soft masks;
2. pseudo-instances are filtered: class score > ``score_thr`` (a float, or per class),
   mask logits binarised at 0.5 (``sigmoid >= mask_thr``), mask area > ``min_mask_area``;
   boxes are recomputed from the kept masks; optionally (``ignore_score_thr``) the
   teacher's less confident detections (``ignore_score_thr <= score <= score_thr``)
   become ``ignored_instances`` of the student sample, so mmdet's assigners
   (``ignore_iof_thr > 0``) neither train them as objects nor as background;
3. optional SAM refinement (``sam_refiner``) replaces teacher masks with SAM masks;
4. pseudo-instances are projected into the student view (``unsup_student``) with the
   views' ``homography_matrix`` (flip / resize / crop / pad all compose);
5. optional batch-level instance mixing (``instance_mixer``, ARP) on the student batch;
   then the optional batch-level strong photometric augmentation (``student_augment``),
   so that pasted instances and their new background share one photometric draw, as in
   the official S4M code (the student branch of the pipeline is then geometry-only);
6. the student is trained on labelled data (``sup_`` losses) and pseudo-labels
   (``unsup_`` losses, weight ``unsup_weight``). Images whose pseudo-labels are all filtered
   out still train as background.

Two-stage schedule: ``load_from`` a *plain* (stage-1, single detector) checkpoint fills the
teacher only; the student keeps its ImageNet backbone initialisation. A checkpoint with
``teacher.``/``student.`` keys (resume) loads both as saved.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Union

import numpy as np
import torch
from mmdet.models.detectors import SemiBaseDetector
from mmdet.models.utils import rename_loss_dict, reweight_loss_dict
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from mmssis.models.utils import view_normalization
from mmssis.models.utils.precision import outside_autocast
from mmssis.registry import MODELS
from mmssis.utils.rank_seed import reseed_global_torch, run_seed
from mmssis.structures import TensorMasks, masks_to_boxes, project_instance_masks
from .pseudo_labels import teacher_pseudo_instances

@dataclass
class PseudoLabelRecord:
    """Every stage of the pseudo-labels of one unlabelled batch (:meth:`SemiMaskDetector.
    pseudo_label`).

    Frames: ``candidates``, ``kept``, ``ignored`` and ``refined`` are in the teacher view
    (masks at each teacher sample's ``img_shape``, boxes xyxy in that view);
    ``student_samples[i].gt_instances`` are in the student view (projected with the views'
    homographies, then mixed by ARP), ``student_inputs`` the (mixed, augmented) images.

    Attributes:
        teacher_inputs: ``(B, 3, H_pad, W_pad)`` normalised teacher-view images.
        teacher_samples: Their samples (with a student view: ``gt_instances`` = the
            teacher-view pseudo-labels, ``refined`` when SAM ran, else ``kept``; without
            one they are left unchanged, e.g. keeping their ground truth).
        candidates: Per image, every teacher detection: ``bboxes``, ``labels``,
            ``scores``, ``mask_logits`` (N, h, w).
        kept: Per image, the candidates that pass the score / mask-area filter, with
            bool ``masks`` (N', h, w) and boxes of those masks.
        ignored: Per image, the uncertain detections (``ignore_score_thr``) or ``None``.
        refined: Per image, ``kept`` after SAM refinement (``None`` without SAM).
        refined_rows: Per image, the row of ``kept`` each refined instance comes from
            (refinement drops masks left below ``min_mask_area``), so ``kept[i][rows]`` and
            ``refined[i]`` pair up.
        student_inputs: ``(B, 3, H_pad, W_pad)`` student images (``None`` when the record
            stops at the teacher view).
        student_samples: The student samples with the pseudo-labels as ``gt_instances``.
        stats: Logged statistics (pseudo-labels per image, SAM and ARP counts).
    """

    teacher_inputs: Tensor
    teacher_samples: SampleList
    candidates: List[InstanceData]
    kept: List[InstanceData]
    ignored: List[Optional[InstanceData]]
    refined: Optional[List[InstanceData]] = None
    refined_rows: Optional[List[Tensor]] = None
    student_inputs: Optional[Tensor] = None
    student_samples: Optional[SampleList] = None
    stats: Dict[str, float] = field(default_factory=dict)

    @property
    def pseudo_instances(self) -> List[InstanceData]:
        """The teacher-view pseudo-labels the student is given (before projection)."""
        return self.refined if self.refined is not None else self.kept


DEFAULT_SEMI_TRAIN_CFG = dict(
    freeze_teacher=True,
    sup_weight=1.0,
    unsup_weight=2.0,
    score_thr=0.7,
    mask_thr=0.5,
    min_mask_area=5,
    projection_mode='bilinear',
    init_student_from_teacher=False,
    ignore_score_thr=None,
)


@MODELS.register_module()
class SemiMaskDetector(SemiBaseDetector):
    """Teacher-student semi-supervised instance segmentation for any mmdet mask model.

    Args:
        detector: Config of the student/teacher detector (Mask R-CNN, Mask2Former, ...).
        semi_train_cfg: Semi-supervised training options; defaults in
            ``DEFAULT_SEMI_TRAIN_CFG``. ``score_thr`` may be a float or a per-class list.
            ``sam_refiner`` / ``instance_mixer`` (dicts) switch on SAM refinement / ARP;
            ``student_augment`` (dict) is the strong photometric augmentation of the
            student batch after ARP.
        semi_test_cfg: ``predict_on='teacher'|'student'``.
        data_preprocessor: Usually a ``MultiBranchDataPreprocessor``.
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 detector: ConfigType,
                 semi_train_cfg: OptConfigType = None,
                 semi_test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        # A misspelt key (score_threshold=0.5) would be ignored and its default used: the
        # keys read by this class, by mmdet's SemiBaseDetector and the S4M parts only.
        valid = sorted(set(DEFAULT_SEMI_TRAIN_CFG) | {
            'sam_refiner', 'instance_mixer', 'student_augment',  # S4M parts
            'cls_pseudo_thr', 'min_pseudo_bbox_wh'})  # mmdet SemiBaseDetector
        unknown = sorted(set(semi_train_cfg or {}) - set(valid))
        if unknown:
            import difflib

            from mmssis.utils.preflight import SetupError
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
                hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ''))
            raise SetupError(
                f"SemiMaskDetector: unknown model.semi_train_cfg key(s) {', '.join(hints)}; "
                f'an unknown key would be ignored and its default used. Valid keys: '
                f"{', '.join(valid)}.")
        cfg = ConfigDict(DEFAULT_SEMI_TRAIN_CFG)
        cfg.update(semi_train_cfg or {})
        super().__init__(detector=detector, semi_train_cfg=cfg,
                         semi_test_cfg=ConfigDict(semi_test_cfg or dict(predict_on='teacher')),
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        # Per-class thresholds may be replaced at run time (confidence calibration hook).
        self.class_score_thr: Optional[Tensor] = None
        self._sam_refiner = None
        self._instance_mixer = None
        self._student_augment = None
        if cfg.get('student_augment'):
            object.__setattr__(self, '_student_augment', MODELS.build(cfg['student_augment']))
        if cfg.get('sam_refiner'):
            # SAM is frozen and must stay out of state_dict/EMA/optimizer: the refiner is
            # stored in __dict__ (object.__setattr__), not registered as a sub-module.
            object.__setattr__(self, '_sam_refiner', MODELS.build(cfg['sam_refiner']))
        if cfg.get('instance_mixer'):
            object.__setattr__(self, '_instance_mixer', MODELS.build(cfg['instance_mixer']))
        self._keep_record = False
        self._record: Optional[PseudoLabelRecord] = None
        # mmengine seeds torch from randomness.seed before building the model
        self._run_seed = run_seed()

    # ----------------------------------------------------------------------------------
    # properties
    @property
    def sam_refiner(self):
        """The frozen SAM refiner (not an ``nn.Module`` child: never saved or optimised)."""
        return self._sam_refiner

    @property
    def instance_mixer(self):
        return self._instance_mixer

    @property
    def student_augment(self):
        """Batch-level strong photometric augmentation of the student (after ARP)."""
        return self._student_augment

    @property
    def num_classes(self) -> int:
        det = self.student
        if hasattr(det, 'panoptic_head'):
            return det.panoptic_head.num_things_classes
        return det.roi_head.bbox_head.num_classes

    def score_thresholds(self, labels: Tensor) -> Tensor:
        """Per-instance score threshold for ``labels`` (N,) -> (N,) float."""
        if self.class_score_thr is not None:
            return self.class_score_thr.to(labels.device)[labels]
        thr = self.semi_train_cfg.score_thr
        if isinstance(thr, (list, tuple)):
            return torch.as_tensor(thr, dtype=torch.float32, device=labels.device)[labels]
        return torch.full(labels.shape, float(thr), device=labels.device)

    # ----------------------------------------------------------------------------------
    # training
    def loss(self, multi_batch_inputs: Dict[str, Tensor],
             multi_batch_data_samples: Dict[str, SampleList]) -> dict:
        """Supervised + pseudo-label losses.

        Args:
            multi_batch_inputs: ``sup`` / ``unsup_teacher`` / ``unsup_student`` images,
                each (B, 3, H, W), normalised.
            multi_batch_data_samples: The matching data samples.

        Returns:
            Loss dict with ``sup_*`` and ``unsup_*`` keys plus pseudo-label statistics.
        """
        # mmdet's samplers draw from torch's global generator: seed it from the step, so
        # that a step's draws do not depend on earlier steps (exact --resume, no state).
        reseed_global_torch(self._run_seed)
        losses = dict()
        losses.update(**self.loss_by_gt_instances(multi_batch_inputs['sup'],
                                                  multi_batch_data_samples['sup']))
        # Teacher, SAM, projection, ARP and the strong augmentation make targets: in fp32
        # outside AMP's autocast, as the official code; only the student runs in it.
        with outside_autocast(multi_batch_inputs['unsup_teacher'].device):
            record = self.pseudo_label(
                multi_batch_inputs['unsup_teacher'], multi_batch_data_samples['unsup_teacher'],
                multi_batch_inputs['unsup_student'], multi_batch_data_samples['unsup_student'])
        if self._keep_record:
            self._record, self._keep_record = record, False
        losses.update(**self.loss_by_pseudo_instances(record.student_inputs,
                                                      record.student_samples, record.stats))
        return losses

    # ----------------------------------------------------------------------------------
    # the pseudo-label path (one implementation: training, calibration, quality, drawing)
    @torch.no_grad()
    def pseudo_label(self, teacher_inputs: Tensor, teacher_samples: SampleList,
                     student_inputs: Optional[Tensor] = None,
                     student_samples: Optional[SampleList] = None, refine=True,
                     mix=True) -> PseudoLabelRecord:
        """Teacher -> filter -> SAM refinement -> projection -> ARP -> student augmentation.

        Args:
            teacher_inputs: ``(B, 3, H_pad, W_pad)`` normalised weak (teacher) views.
            teacher_samples: Their samples (``img_shape``, ``img_path``, homography ...);
                with a student view they receive the teacher-view pseudo-labels as
                ``gt_instances``.
            student_inputs: ``(B, 3, H_pad, W_pad)`` student views; ``None`` stops the
                record at the teacher view (no projection, mixing or augmentation).
            student_samples: Their samples; they receive the projected pseudo-labels.
            refine: ``True``: the detector's SAM refiner (when it has one); ``False``: no
                refinement; a ``SamMaskRefiner``: that one instead.
            mix: ``True``: ARP and the student augmentation (when configured);
                ``False``: neither; an ``ARPInstanceMixer``: that mixer instead (e.g. a
                copy whose generator may advance) and the configured augmentation.

        Returns:
            The :class:`PseudoLabelRecord` of every stage.
        """
        self.teacher.eval()
        candidates = teacher_pseudo_instances(self.teacher, teacher_inputs, teacher_samples)
        kept = [self.filter_pseudo_instances(inst) for inst in candidates]
        ignored = [self.uncertain_pseudo_instances(inst, k) for inst, k in zip(candidates, kept)]
        kept_scores = torch.cat([k.scores.float() for k in kept]) if kept else None
        stats = {'unsup_pseudo_num_teacher': sum(len(k) for k in kept) / max(len(kept), 1),
                 # mean class score of the kept pseudo-labels (0 when none is kept)
                 'unsup_pseudo_score': float(kept_scores.mean())
                 if kept_scores is not None and kept_scores.numel() else 0.0}
        refined = refined_rows = None
        refiner = self._sam_refiner if refine is True else (refine or None)
        if refiner is not None:
            refined, sam_stats = refiner.refine_batch(
                teacher_inputs, teacher_samples, kept, view_normalization(self.data_preprocessor))
            # Official S4M: SAM's mask replaces the teacher's whatever its area.
            large = [torch.ones(len(inst), dtype=torch.bool, device=inst.masks.device)
                     if getattr(refiner, 'replaces_always', False) else self._large_enough(inst)
                     for inst in refined]
            refined_rows = [torch.nonzero(k).flatten() for k in large]
            refined = [inst[k] for inst, k in zip(refined, large)]
            stats.update(sam_stats)
        record = PseudoLabelRecord(teacher_inputs, teacher_samples, candidates, kept, ignored,
                                   refined, refined_rows=refined_rows, stats=stats)
        if self.semi_train_cfg.get('ignore_score_thr') is not None:
            stats['unsup_pseudo_num_ignored'] = sum(len(i) for i in ignored) / max(len(kept), 1)
        if student_inputs is None:
            return record
        self._attach(record)
        student_samples = self.project_pseudo_instances(teacher_samples, student_samples)
        mixer = self._instance_mixer if mix is True else (mix or None)
        if mixer is not None:
            student_inputs, student_samples, mix_stats = mixer(student_inputs, student_samples)
            stats.update(mix_stats)
        if mix is not False and self._student_augment is not None:
            student_inputs = self._student_augment(student_inputs, student_samples,
                                                   self.data_preprocessor)
        self._to_student_targets(student_samples)
        record.student_inputs, record.student_samples = student_inputs, student_samples
        return record

    @staticmethod
    def _to_student_targets(samples: SampleList) -> None:
        """The student's pseudo-labels as mmdet's losses read ground truth.

        From the teacher to here (filter, SAM, projection, ARP) the masks stay ``(N, H, W)``
        bool tensors on the model's device and carry no boxes; after the last stage that
        changes them, their boxes are computed (once) and they are wrapped as
        :class:`~mmssis.structures.TensorMasks` (still on the device: Mask2Former reads
        them with ``to_tensor``, Mask R-CNN crops its RoI targets there).
        """
        for sample in samples:
            masks = sample.gt_instances.get('masks')
            if isinstance(masks, Tensor):
                sample.gt_instances.bboxes = masks_to_boxes(masks)
                sample.gt_instances.masks = TensorMasks(masks)

    def keep_next_record(self) -> None:
        """Keep the :class:`PseudoLabelRecord` of the next training step (for drawing it,
        :meth:`pop_record`); records are not kept otherwise."""
        self._keep_record = True

    def pop_record(self) -> Optional[PseudoLabelRecord]:
        """The record kept by :meth:`keep_next_record` (``None`` if none); forgets it."""
        record, self._record, self._keep_record = self._record, None, False
        return record

    def loss_by_pseudo_instances(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                                 batch_info: Optional[dict] = None) -> dict:
        """Student loss on pseudo-labels (already filtered); background-only images train."""
        losses = self.student.loss(batch_inputs, batch_data_samples)
        weight = self.semi_train_cfg.get('unsup_weight', 2.0)
        losses = rename_loss_dict('unsup_', reweight_loss_dict(losses, weight))
        num = sum(len(s.gt_instances) for s in batch_data_samples)
        # Keys without 'loss' are logged but not summed into the total loss.
        losses['unsup_pseudo_num'] = torch.tensor(float(num) / max(len(batch_data_samples), 1),
                                                  device=batch_inputs.device)
        for key, value in (batch_info or {}).items():
            losses[key] = torch.tensor(float(value), device=batch_inputs.device)
        return losses

    @staticmethod
    def _attach(record: PseudoLabelRecord) -> None:
        """Teacher samples get the teacher-view pseudo-labels (``gt_instances``) and the
        uncertain detections (``pseudo_ignored_instances``), as projection reads them."""
        for sample, inst, ign in zip(record.teacher_samples, record.pseudo_instances,
                                     record.ignored):
            sample.gt_instances = inst
            if ign is not None:  # own field: the pipeline may set ignored_instances
                sample.pseudo_ignored_instances = ign

    def uncertain_pseudo_instances(self, inst: InstanceData,
                                   kept: InstanceData) -> Optional[InstanceData]:
        """Detections between ``ignore_score_thr`` and the pseudo-label threshold.

        Without them, an object the teacher is unsure about is a *background* example for
        the student; as ``ignored_instances`` the student's assigners skip anchors/RoIs
        that lie on them (``ignore_iof_thr``), like crowd regions of COCO.

        Uncertain detections that overlap a kept pseudo-instance (mask IoF > 0.3: NMS
        left-overs and other-class duplicates of it) are dropped: mmdet's assigners give
        an ignored anchor/RoI no positive either, so they would hide the kept object.

        Args:
            inst: All candidates (``scores``, ``labels``, ``mask_logits``).
            kept: The kept pseudo-instances (boolean ``masks``).

        Returns:
            ``None`` when ``ignore_score_thr`` is unset, else the uncertain instances with
            boolean ``masks`` (N', H, W).
        """
        low = self.semi_train_cfg.get('ignore_score_thr')
        if low is None:
            return None
        sel = (inst.scores >= float(low)) & (inst.scores <= self.score_thresholds(inst.labels))
        inst = inst[sel]
        inst.masks = inst.mask_logits >= 0
        inst = self._drop_small(inst)
        if len(inst) and len(kept):
            m = inst.masks.flatten(1).float()
            inter = m @ kept.masks.flatten(1).float().t()  # (N', K)
            iof = inter / m.sum(1, keepdim=True).clamp(min=1)
            inst = inst[iof.max(1).values <= 0.3]
        return inst

    def filter_pseudo_instances(self, inst: InstanceData, by_score: bool = True
                                ) -> InstanceData:
        """Keep score > threshold and mask area > ``min_mask_area``; boxes from masks.

        Args:
            inst: Candidates with ``scores`` (N,), ``labels`` (N,), ``mask_logits``
                (N, H, W).
            by_score: Apply the score threshold (``False``: the mask filter only, e.g.
                to measure the teacher's reliability at every score).

        Returns:
            Kept instances with boolean ``masks`` (N', H, W) (and no ``bboxes``: boxes are
            computed once, for the student's targets).
        """
        if by_score:
            inst = inst[inst.scores > self.score_thresholds(inst.labels)]
        prob_thr = float(self.semi_train_cfg.mask_thr)
        logit_thr = float(np.log(prob_thr / (1 - prob_thr)))
        inst.masks = inst.mask_logits >= logit_thr
        return self._drop_small(inst)

    def _large_enough(self, inst: InstanceData) -> Tensor:
        """``(N,)`` bool: mask area (``masks`` (N, H, W) tensor) > ``min_mask_area``."""
        return inst.masks.flatten(1).sum(1) > self.semi_train_cfg.min_mask_area

    def _drop_small(self, inst: InstanceData) -> InstanceData:
        """The instances with :meth:`_large_enough` masks, without the teacher's boxes."""
        inst = inst[self._large_enough(inst)]
        if 'bboxes' in inst:
            del inst.bboxes
        return inst

    def project_pseudo_instances(self, batch_pseudo_instances: SampleList,
                                 batch_data_samples: SampleList) -> SampleList:
        """Warp teacher-view pseudo-instances into the student view.

        Masks are warped with ``H_student @ inv(H_teacher)`` to the student ``img_shape``
        (zero-padded to ``batch_input_shape`` for MaskFormer-family students) and stay bool
        tensors on the model's device (:meth:`pseudo_label` converts them once, at its end);
        instances left smaller than ``min_mask_area`` (e.g. cropped away) are dropped. The
        uncertain detections become the student's ``ignored_instances`` (boxes of their
        warped masks).
        """
        for teacher_sample, student_sample in zip(batch_pseudo_instances, batch_data_samples):
            student_sample.gt_instances = self._project(teacher_sample.gt_instances,
                                                        teacher_sample, student_sample)
            if 'pseudo_ignored_instances' in teacher_sample:
                ign = self._project(teacher_sample.pseudo_ignored_instances, teacher_sample,
                                    student_sample)
                student_sample.ignored_instances = InstanceData(
                    bboxes=masks_to_boxes(ign.masks), labels=ign.labels)
        return batch_data_samples

    def _project(self, inst: InstanceData, teacher_sample, student_sample) -> InstanceData:
        """One sample's instances -> student view; boxes from warped masks."""
        pad = hasattr(self.student, 'panoptic_head')
        inst = InstanceData(labels=inst.labels, scores=inst.scores, masks=inst.masks)
        projected = project_instance_masks(
            inst, teacher_sample, student_sample,
            mode=self.semi_train_cfg.projection_mode, pad_to_batch_input=pad, with_boxes=False)
        return projected[self._large_enough(projected)]

    # ----------------------------------------------------------------------------------
    # checkpoints
    def _load_from_state_dict(self, state_dict: dict, prefix: str, local_metadata: dict,
                              strict: bool, missing_keys: Union[List[str], str],
                              unexpected_keys: Union[List[str], str],
                              error_msgs: Union[List[str], str]) -> None:
        """A plain single-detector checkpoint initialises the *teacher* only.

        mmdet's ``SemiBaseDetector`` copies such a checkpoint into both networks; the
        two-stage schedule needs the student to keep its ImageNet initialisation, so the
        student's current weights are kept (unless ``init_student_from_teacher``).
        """
        own = [k for k in state_dict if k.startswith(prefix)]
        is_plain = own and not any(k[len(prefix):].startswith(('student.', 'teacher.'))
                                   for k in own)
        if is_plain:
            plain = {k[len(prefix):]: state_dict.pop(k) for k in own}
            for key, value in plain.items():
                state_dict[f'{prefix}teacher.{key}'] = value
            if self.semi_train_cfg.get('init_student_from_teacher', False):
                for key, value in plain.items():
                    state_dict[f'{prefix}student.{key}'] = value
            else:
                for key, value in self.student.state_dict().items():
                    state_dict[f'{prefix}student.{key}'] = value
        super(SemiBaseDetector, self)._load_from_state_dict(state_dict, prefix, local_metadata,
                                                            strict, missing_keys,
                                                            unexpected_keys, error_msgs)
