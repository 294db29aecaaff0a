"""Pictures for people: Cityscapes color map, score heat map and the mask overlay."""
from __future__ import annotations

import numpy as np

#: Cityscapes train-id colors (road, sidewalk, building, wall, fence, pole, traffic light, traffic sign,
#: vegetation, terrain, sky, person, rider, car, truck, bus, train, motorcycle, bicycle).
CITYSCAPES_PALETTE = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
        (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
        (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ],
    dtype=np.uint8,
)
CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
UNLABELLED = 255

# A 256-entry lookup table: ids without a color (including 255 = unlabelled) are black.
_LUT = np.zeros((256, 3), dtype=np.uint8)
_LUT[: len(CITYSCAPES_PALETTE)] = CITYSCAPES_PALETTE


def color_map(labels: np.ndarray) -> np.ndarray:
    """uint8 train ids HxW -> HxWx3 RGB."""
    return _LUT[labels]


def heat_map(score: np.ndarray) -> np.ndarray:
    """Per-image min-max normalized score (thesis eq. 5.5) as an RGB heat map (blue low, red high)."""
    import cv2

    lo, hi = float(np.min(score)), float(np.max(score))
    norm = np.zeros(score.shape, np.uint8) if hi <= lo else ((score - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(norm, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5, color=(255, 0, 0)) -> np.ndarray:
    """The camera image with OOD pixels tinted in `color`."""
    out = image.copy()
    hit = mask > 0
    tint = np.asarray(color, dtype=np.float32)
    out[hit] = (image[hit].astype(np.float32) * (1.0 - alpha) + tint * alpha).astype(np.uint8)
    return out
