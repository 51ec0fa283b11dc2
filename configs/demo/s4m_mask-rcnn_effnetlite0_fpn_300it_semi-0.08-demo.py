# Full S4M stage 2 on the demo data: SAM pseudo-mask refinement + ARP instance mixing +
# per-class confidence calibration (mmssis' addition; S4M uses a fixed 0.7 threshold).
_base_ = './s4m-arp_mask-rcnn_effnetlite0_fpn_300it_semi-0.08-demo.py'

# Calibration slice and hook settings: configs/_base_/datasets/semi_demo_instance.py.
custom_hooks = _base_.custom_hooks + [_base_.demo_calibration_hook]
