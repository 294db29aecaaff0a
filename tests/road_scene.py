"""Test scenes: boxes standing on a flat road, seen by a calibrated camera, rendered by ray casting.

Every pixel centre's ray (through the lens model) is intersected with each box; the pixel belongs to the
nearest box it hits. This is exact at pixel centres, so the renderer adds no bias of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

from hypood_ros.geometry import CameraModel, CameraPose


@dataclass(frozen=True)
class Box:
    x: float  # near face, metres ahead of the base_frame origin
    y: float  # centre, metres to the left
    width: float = 1.0
    depth: float = 0.6
    height: float = 0.8


def pixel_rays(camera: CameraModel, pose: CameraPose) -> np.ndarray:
    """[H*W,3] ray directions in base_frame through every pixel centre."""
    v, u = np.mgrid[0:camera.height, 0:camera.width]
    xn, yn = camera.undistort(u.ravel().astype(np.float64), v.ravel().astype(np.float64))
    return np.stack([xn, yn, np.ones_like(xn)], axis=1) @ pose.rotation.T


def render(camera: CameraModel, pose: CameraPose, boxes: Sequence[Box], rays=None) -> np.ndarray:
    """int32 HxW: index+1 of the box each pixel sees, 0 for road or sky."""
    rays = pixel_rays(camera, pose) if rays is None else rays
    origin = pose.translation
    best = np.full(len(rays), np.inf)
    ids = np.zeros(len(rays), dtype=np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / rays
        for i, box in enumerate(boxes):
            lo = np.array([box.x, box.y - box.width / 2, 0.0])
            hi = np.array([box.x + box.depth, box.y + box.width / 2, box.height])
            t1, t2 = (lo - origin) * inv, (hi - origin) * inv
            near = np.nanmax(np.minimum(t1, t2), axis=1)
            far = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (near <= far) & (far > 0) & (near < best)
            best[hit] = near[hit]
            ids[hit] = i + 1
    return ids.reshape(camera.height, camera.width)


def nearest_point(box: Box) -> float:
    """Distance from the base_frame origin to the box's footprint."""
    y = min(max(0.0, box.y - box.width / 2), box.y + box.width / 2)
    return float(np.hypot(box.x, y))


def cameras() -> List[CameraModel]:
    """The same 1280x720 view as a pinhole, through a plumb_bob lens and through an equidistant lens."""
    return [
        CameraModel(1280, 720, 1200.0, 1200.0, 640.0, 360.0),
        CameraModel(1280, 720, 1200.0, 1190.0, 642.5, 357.0, "plumb_bob", (-0.28, 0.09, 0.0008, -0.0006, 0.0)),
        CameraModel(1280, 720, 1100.0, 1100.0, 639.0, 361.0, "equidistant", (0.04, -0.012, 0.003, -0.0005)),
    ]


POSE = dict(height=1.6, roll=0.01, pitch=0.15, yaw=0.02, x=0.5, y=0.1)
