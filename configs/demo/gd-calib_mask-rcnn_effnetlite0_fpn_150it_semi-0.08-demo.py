# Stage 2 demo with per-class pseudo-label thresholds calibrated on labelled images
# (ConfidenceCalibrationHook) instead of the fixed score_thr=0.7 (kept as the fallback
# for classes with too few teacher detections).
# Every 100 iterations (and before the first one) the teacher predicts on 24 images of
# the labelled split, loaded with the *test* pipeline plus GT; each class gets the lowest
# threshold whose pseudo-labels reach 80 % precision (mask IoU >= 0.5), within
# [0.3, 0.95]. Note the stage-1 teacher was trained on these images, so its precision
# there is optimistic; with more labelled data, hold a slice out for calibration.
# Reliability diagrams: work_dir/calibration/reliability_iter_{N}.png (and TensorBoard).
_base_ = './gd_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'

# Calibration slice and hook settings: configs/_base_/datasets/semi_demo_instance.py.
custom_hooks = _base_.custom_hooks + [_base_.demo_calibration_hook]
