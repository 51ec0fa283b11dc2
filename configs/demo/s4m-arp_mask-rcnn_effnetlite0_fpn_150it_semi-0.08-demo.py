# S4M stage 2 on the demo data: SAM pseudo-mask refinement + ARP instance mixing (fixed
# 0.7 pseudo-label threshold, as in the paper). The teacher comes from the distilled
# stage-1 checkpoint (`load_from`, set by tools/misc/run_demo.py).
# ARP's area threshold is S4M's 3000 px at COCO scale (~1 % of a 640 x 480 image) scaled to
# the 256 x 256 demo images: 600 px.
_base_ = './s4m-refine_mask-rcnn_effnetlite0_fpn_150it_semi-0.08-demo.py'

model = dict(
    semi_train_cfg=dict(
        instance_mixer=dict(
            type='ARPInstanceMixer',
            # One pair of the 2 unlabelled images per process: every image is mixed, on
            # purpose (the default max(1, B // 4) rule refuses a layout that mixes all).
            num_pairs=1,
            min_area=600,
            scale_range=(0.8, 1.2),
            max_translate=0.2,
            seed=0)))

