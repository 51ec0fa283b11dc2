# SAM of the paper configs: SAM 2 Hiera-L, as the official S4M code runs it
# (cvlab-kaist/S4M `config/add_cfg.py`: SSL.SAM_TYPE 'large' -> 'sam2_hiera_l.yaml', weights
# `sam2_hiera_large.pt` in SSL.SAM_CKPT_DIR). Download the weights once (Meta's release):
#   https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_large.pt
# into `checkpoints/` (or set `checkpoint=` to where they are). Needs `pip install 'mmssis[sam2]'`.
#
# One line away (the `_base_` line of `configs/_base_/s4m_parts.py`):
# * SAM 2.1 Hiera-L: './sam/sam2.1_hiera_l.py';
# * segment-anything ViT-H / L / B: './sam/sam_vit_h.py' (`sam_vit_l.py`, `sam_vit_b.py`).
sam_backend = dict(
    type='mmssis.Sam2Backend',
    config='configs/sam2/sam2_hiera_l.yaml',
    checkpoint='checkpoints/sam2_hiera_large.pt')
