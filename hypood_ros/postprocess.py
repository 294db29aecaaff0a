"""Score and class-id maps -> camera-size host arrays and a cleaned obstacle mask.

At `score_resolution = network` the maps arrive on the network grid and `upsample` brings them to camera
size (score bilinear, class ids nearest); at `image` they arrive at camera size and only go to the host.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F


def upsample(score: torch.Tensor, class_ids: torch.Tensor, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """[h,w] score (bilinear) and class ids (nearest) -> camera size (unchanged if already there), then to the host."""
    if tuple(score.shape[-2:]) != tuple(size):
        score = F.interpolate(score[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]
        class_ids = F.interpolate(class_ids[None, None].float(), size=size, mode="nearest")[0, 0].to(torch.uint8)
    return score.float().cpu().numpy(), class_ids.cpu().numpy()


def _ellipse(size: int) -> np.ndarray:
    import cv2

    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def clean_mask(raw: np.ndarray, region: Optional[np.ndarray] = None, opening: int = 0, min_area: int = 0) -> np.ndarray:
    """Boolean HxW mask -> uint8 0/255.

    region: bool HxW region of interest (`hypood_ros.roi`); pixels outside it are never flagged. It is
    applied first, so the opening and the minimum area judge only what lies inside it.
    opening: diameter in pixels of the elliptical opening (0 = off) that removes speckle.
    min_area: connected components (8-connected) smaller than this many pixels are dropped.
    """
    import cv2

    mask = raw.astype(np.uint8)
    if region is not None:
        mask &= region.view(np.uint8) if region.dtype == bool else (region > 0).astype(np.uint8)
    if opening > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _ellipse(opening))
    if min_area <= 1:
        return mask * np.uint8(255)
    count, components, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # background
    return (keep[components].astype(np.uint8)) * np.uint8(255)
