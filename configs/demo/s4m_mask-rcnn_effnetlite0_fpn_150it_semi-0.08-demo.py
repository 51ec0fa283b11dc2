# Full S4M stage 2 on the demo data: SAM pseudo-mask refinement + ARP instance mixing +
# per-class confidence calibration (mmssis' addition; S4M uses a fixed 0.7 threshold) +
# refinement only of the classes where SAM is measured to help (mmssis' addition; S4M
# refines every pseudo-mask: `s4m-sam-always_...`). Both measured on the labelled
# calibration slice: configs/_base_/datasets/semi_demo_instance.py.
_base_ = './s4m-arp_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'

model = dict(semi_train_cfg=dict(sam_refiner=dict(policy='measured')))
# The SAM benefit is measured after calibration (same priority, list order).
custom_hooks = _base_.custom_hooks + [_base_.demo_calibration_hook,
                                      _base_.demo_sam_benefit_hook]
