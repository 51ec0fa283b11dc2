# SAM 2.1 Hiera-L (Meta's 2024-09 release):
#   https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_large.pt
# The official S4M code uses SAM 2 Hiera-L (`sam2_hiera_l.py`); this is the one-line upgrade.
sam_backend = dict(
    type='mmssis.Sam2Backend',
    config='configs/sam2.1/sam2.1_hiera_l.yaml',
    checkpoint='checkpoints/sam2.1_hiera_large.pt')
