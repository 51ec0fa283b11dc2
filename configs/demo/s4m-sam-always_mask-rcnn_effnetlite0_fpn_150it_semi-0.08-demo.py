# The full S4M demo stage 2 with S4M's own refinement rule: SAM refines every kept
# pseudo-mask (policy='always', the refiner's default), no SAM benefit measurement.
# This was the demo's S4M row before the measured policy; the ablation compares the two.
_base_ = './s4m-arp_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'

model = dict(semi_train_cfg=dict(sam_refiner=dict(policy='always')))
custom_hooks = _base_.custom_hooks + [_base_.demo_calibration_hook]
