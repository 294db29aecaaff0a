"""The calibration of an output image: a camera's CameraInfo carried to an image of another size (ROS-free).

An output at the size of the image the camera_info describes keeps that calibration unchanged (binning and
region of interest included, as image_geometry reads them). An output of another size gets intrinsics for
exactly its own pixels: the region of interest and the binning are folded into K and P (the output is a
plain image: no binning, no roi) and both are scaled to it, pixel centres kept aligned
(u_out = (u_in + 0.5) * s - 0.5). D and R are unchanged: they act on normalized coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Tuple

import numpy as np

from hypood_ros.geometry.camera import CameraError


@dataclass(frozen=True)
class Calibration:
    """The size-dependent fields of a sensor_msgs/CameraInfo (roi: x_offset, y_offset, width, height)."""

    width: int
    height: int
    k: Tuple[float, ...]  # 3x3 row-major
    p: Tuple[float, ...]  # 3x4 row-major
    binning_x: int = 0
    binning_y: int = 0
    roi: Tuple[int, int, int, int] = (0, 0, 0, 0)

    def image_size(self) -> Tuple[int, int]:
        """(height, width) of the image this calibration describes: the roi (else the full sensor), binned."""
        x, y, w, h = self.roi
        full_w, full_h = (w, h) if w and h else (self.width, self.height)
        return full_h // max(self.binning_y, 1), full_w // max(self.binning_x, 1)


def for_output(calibration: Calibration, height: int, width: int) -> Calibration:
    """The calibration of an output image of `height` x `width` made from the image `calibration` describes."""
    if calibration.width <= 0 or calibration.height <= 0:
        raise CameraError(f"camera_info has no image size ({calibration.width}x{calibration.height})")
    if len(calibration.k) != 9 or len(calibration.p) != 12:
        raise CameraError("camera_info K must have 9 entries and P 12")
    in_h, in_w = calibration.image_size()
    if (in_h, in_w) == (height, width):
        return calibration
    if in_h <= 0 or in_w <= 0:
        raise CameraError(f"camera_info describes an empty image ({in_w}x{in_h})")
    # full-sensor pixel -> output pixel: u_out = a * u_full + b (roi offset, binning and scale in one step)
    x0, y0 = calibration.roi[:2] if all(calibration.roi[2:]) else (0, 0)
    ax = width / in_w / max(calibration.binning_x, 1)
    ay = height / in_h / max(calibration.binning_y, 1)
    to_output = np.array([[ax, 0.0, (0.5 - x0) * ax - 0.5], [0.0, ay, (0.5 - y0) * ay - 0.5], [0.0, 0.0, 1.0]])
    k = to_output @ np.asarray(calibration.k, dtype=np.float64).reshape(3, 3)
    p = to_output @ np.asarray(calibration.p, dtype=np.float64).reshape(3, 4)
    return replace(calibration, width=width, height=height, k=tuple(k.ravel().tolist()), p=tuple(p.ravel().tolist()),
                   binning_x=0, binning_y=0, roi=(0, 0, 0, 0))
