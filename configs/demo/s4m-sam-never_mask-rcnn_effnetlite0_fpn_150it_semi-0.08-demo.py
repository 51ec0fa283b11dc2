# The full S4M demo stage 2 without SAM refinement (policy='never': the teacher's masks
# are the pseudo-masks; ARP, the distilled teacher and calibration stay). The ablation's
# no-refinement row for the refinement policies.
_base_ = './s4m-arp_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'

model = dict(semi_train_cfg=dict(sam_refiner=dict(policy='never')))
custom_hooks = _base_.custom_hooks + [_base_.demo_calibration_hook]
