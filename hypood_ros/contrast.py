"""The score against its surroundings: what the obstacle mask thresholds when `local_contrast` is on.

An obstacle on the road is a compact patch scoring above the road around it. The level of the score
itself drifts across a frame and from frame to frame (far road, shadows, the border of the region), so
a single threshold on the raw score is spent where the whole neighbourhood scores high. Subtracting
the local mean of the score inside the region keeps what stands out from its surroundings.

The mean is Gaussian-weighted over the region's pixels only (pixels outside it, or not finite, carry
no weight), with sigma = `local_contrast` x the frame's height, so one value serves every camera
resolution. It is smooth at that scale, so it is formed on a grid of about sigma / 4 per cell (area
averages) and brought back to the frame bilinearly: its cost hardly depends on the frame size. ROS-free.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

#: grid cells per sigma on which the local mean is formed
CELLS_PER_SIGMA = 4


def local_mean(score: np.ndarray, region: Optional[np.ndarray], sigma: float) -> np.ndarray:
    """Gaussian-weighted mean of `score` (HxW float32) over `region` (bool HxW; None: everywhere) around
    each pixel, sigma = `sigma` x H pixels; where no region pixel is near, the mean is 0."""
    import cv2

    h, w = score.shape
    sigma_px = sigma * h
    step = max(1, int(sigma_px // CELLS_PER_SIGMA))
    cells = (max(1, math.ceil(h / step)), max(1, math.ceil(w / step)))
    inside = np.ones(score.shape, bool) if region is None else np.asarray(region, bool)
    values, weight = _cells(score, inside, cells, step)
    if not np.isfinite(values).all():  # a non-finite score: left out of the mean, as pixels outside the region are
        values, weight = _cells(score, inside & np.isfinite(score), cells, step)
    blur = dict(ksize=(0, 0), sigmaX=sigma_px / step, borderType=cv2.BORDER_CONSTANT)
    num = cv2.GaussianBlur(values, **blur)
    den = cv2.GaussianBlur(weight, **blur)
    mean = np.divide(num, den, out=np.zeros_like(num), where=den > 1e-6)
    if step > 1:
        mean = cv2.resize(mean, (cells[1] * step, cells[0] * step), interpolation=cv2.INTER_LINEAR)[:h, :w]
    return mean


def _cells(score: np.ndarray, inside: np.ndarray, cells, step: int):
    """Per grid cell of step x step pixels, the region's scores summed and its pixels counted, both over
    step^2 (their ratio is the cell's mean; the frame is padded with weightless pixels to whole cells:
    whole-number area averaging is also OpenCV's fast one)."""
    import cv2

    h, w = score.shape
    padded = (cells[0] * step, cells[1] * step)
    values = np.zeros(padded, np.float32)
    weight = np.zeros(padded, np.float32)
    np.copyto(values[:h, :w], score, where=inside)
    weight[:h, :w] = inside
    if step > 1:
        small = (cells[1], cells[0])
        values = cv2.resize(values, small, interpolation=cv2.INTER_AREA)
        weight = cv2.resize(weight, small, interpolation=cv2.INTER_AREA)
    return values, weight


def contrast_score(score: np.ndarray, region: Optional[np.ndarray], sigma: float) -> np.ndarray:
    """What the mask thresholds: `score` itself when `sigma` is 0, else the score minus its local mean
    inside `region` (`local_mean`)."""
    if sigma <= 0:
        return score
    return score - local_mean(score, region, sigma)
