# segment-anything ViT-B (the original SAM):
#   https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth
# A replacement for the paper's SAM 2 Hiera-L (`sam2_hiera_l.py`), e.g. to compare SAMs.
sam_backend = dict(
    type='mmssis.SegmentAnythingBackend',
    model_type='vit_b',
    checkpoint='checkpoints/sam_vit_b_01ec64.pth')
