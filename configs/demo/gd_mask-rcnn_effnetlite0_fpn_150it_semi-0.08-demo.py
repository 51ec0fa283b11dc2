# Stage 2 (semi-supervised, no SAM) on the demo data: the student learns from the labelled
# split and from pseudo-masks of the EMA teacher. `load_from` (the supervised demo
# checkpoint) fills the teacher and, in the demo, the student too (S4M: a fresh ImageNet
# student; see configs/_base_/schedules/demo_semi.py).
_base_ = [
    '../_base_/models/mask-rcnn_effnetlite0_fpn_demo.py',
    '../_base_/datasets/semi_demo_instance.py',
    '../_base_/schedules/demo_semi.py',
    '../_base_/demo_runtime.py',
]

detector = _base_.model
model = dict(
    _delete_=True,
    type='SemiMaskDetector',
    detector=detector,
    data_preprocessor=dict(
        type='MultiBranchDataPreprocessor', data_preprocessor=detector.data_preprocessor),
    semi_train_cfg=dict(
        sup_weight=1.0,
        # S4M uses 2.0. Demo, student started from the `sup` teacher, earlier 200-iteration recipe:
        # segm AP 0.555 at 1.0, 0.509 at 2.0 (seed 0).
        unsup_weight=1.0,
        score_thr=0.7,
        mask_thr=0.5,
        min_mask_area=5,
        init_student_from_teacher=True),
    semi_test_cfg=dict(predict_on='student'))

# Set by tools/misc/run_demo.py to the stage-1 checkpoint.
load_from = None

# Under DDP some student heads can get no gradient in a step (e.g. no positive RoI for the
# mask head when an image's pseudo-labels are all filtered out).
find_unused_parameters = True
