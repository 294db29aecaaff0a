"""Pictures for people: Cityscapes color map, score heat map and the mask overlay."""
from __future__ import annotations

import numpy as np

from hypood_ros.classes import CITYSCAPES_COLORS, CITYSCAPES_NAMES, UNLABELLED, default_classes  # noqa: F401

#: Cityscapes train-id colors (the default class colours; `hypood_ros.classes` holds the class metadata).
CITYSCAPES_PALETTE = np.array(CITYSCAPES_COLORS, dtype=np.uint8)
CLASS_NAMES = CITYSCAPES_NAMES

# Ids without a color (including 255 = unlabelled) are black.
_DEFAULT_LUT = default_classes(len(CITYSCAPES_NAMES)).lut()


def color_map(labels: np.ndarray, lut: np.ndarray | None = None) -> np.ndarray:
    """uint8 class ids HxW -> HxWx3 RGB through a 256x3 table (`ClassInfo.lut()`; Cityscapes by default)."""
    return (_DEFAULT_LUT if lut is None else lut)[labels]


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
