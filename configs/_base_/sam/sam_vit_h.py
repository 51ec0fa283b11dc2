# segment-anything ViT-H (the original SAM):
#   https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth
# A replacement for the paper's SAM 2 Hiera-L (`sam2_hiera_l.py`), e.g. to compare SAMs.
sam_backend = dict(
    type='mmssis.SegmentAnythingBackend',
    model_type='vit_h',
    checkpoint='checkpoints/sam_vit_h_4b8939.pth')
