# Supervised baseline on the demo data: Mask R-CNN + EfficientNet-Lite0 trained on the
# labelled 8 % split only. This is also the stage-1 teacher of the demo semi pipeline.
_base_ = [
    '../_base_/models/mask-rcnn_effnetlite0_fpn_demo.py',
    '../_base_/datasets/demo_instance.py',
    '../_base_/schedules/demo_sup.py',
    '../_base_/demo_runtime.py',
]
