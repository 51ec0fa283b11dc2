# S4M stage 2 on ONE GPU (docs/user_guides/faq.md): the official per-GPU layout, 3 labelled
# + 3 unlabelled images per iteration (ARP mixes 2 of the 3 unlabelled ones, as on each of the
# recipe's 4 GPUs), instead of the recipe's 4 GPUs x (3 + 3) = 24. The learning rate follows
# mmdet's linear rule (auto_scale_lr enabled: x 6 / 24); the schedule keeps its iterations, so
# the run sees 1/4 of the recipe's images (multiply max_iters, the LR milestones and
# burn_in_iters by 4 to see as many). Train with `--amp`; SAM ViT-B
# (`configs/_base_/sam/sam_vit_b.py`) or offline refinement (tools/refine_pseudo_labels.py)
# lower the memory further.
_base_ = './s4m_mask2former_r50_368k_semi-0.05-coco.py'

batch_size = 6
train_dataloader = dict(
    batch_size=batch_size, sampler=dict(batch_size=batch_size, source_ratio=[3, 3]))
auto_scale_lr = dict(enable=True)
