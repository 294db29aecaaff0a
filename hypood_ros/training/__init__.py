"""Training: stage 1 (FPN + linear head on a frozen DINOv2) and stage 2 (UEM on a frozen segmentor)."""
