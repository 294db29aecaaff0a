"""The region of interest of the obstacle mask: where an OOD pixel can be an obstacle a vehicle acts on.

Scores are highest on buildings, vehicles and class borders, where no obstacle matters; a threshold
calibrated over the whole picture is spent there. The mask (and its calibration) is therefore limited to
a region:

- `none`: the whole picture.
- `road`: the drivable region from the segmentation. The road components that reach the lower part of
  the picture are kept, and the region is everything between their leftmost and rightmost pixel in each
  row together with everything between their top and bottom pixel in each column. An obstacle on the
  road breaks the road's class, so it is never labelled road; it lies inside that extent all the same.
  The region's border is then pulled in by `margin` pixels: class borders (road/sidewalk, road/hood)
  score as high as obstacles and would spend the false-alarm budget there. Optionally, pixels labelled
  as a known road user (person, rider, vehicles: `KNOWN_OBJECTS`) are taken out (`drop_known`): a vehicle
  ahead is inside the road's extent and its outline scores high; but a small model also calls unseen
  obstacles "car" (docs/OBSTACLES.md has the measurement), so it is off by default.
- `corridor`: the space ahead of the vehicle from camera geometry (`geometry.corridor`), alone.
- `road_corridor`: both at once (their intersection).

ROS-free and cheap: the road extent is formed on a grid of about `ROAD_ROWS` rows (every `step`-th row and
column of the labels) and brought back with nearest-neighbour sampling, so its border is `step` pixels
coarse (docs/PERFORMANCE.md has the cost).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from hypood_ros.errors import ConfigError

#: Region modes of the obstacle mask (parameter `roi`).
ROI_MODES: Tuple[str, ...] = ("none", "road", "corridor", "road_corridor")
#: Modes that need camera_info and the camera pose.
GEOMETRY_MODES = ("corridor", "road_corridor")
ROAD_ID = 0
#: Cityscapes train ids of known road users: person, rider, car, truck, bus, train, motorcycle, bicycle.
KNOWN_OBJECTS: Tuple[int, ...] = (11, 12, 13, 14, 15, 16, 17, 18)
#: A road component belongs to the drivable region when its lowest pixel lies in this lower fraction of
#: the picture (the road ahead starts at the bottom; a patch of road seen between buildings does not).
BOTTOM_FRACTION = 0.25
#: Rows of the grid the road extent is formed on: every `road_step(height)`-th row and column.
ROAD_ROWS = 180


def road_step(height: int) -> int:
    """Rows and columns between two samples of the road extent: about ROAD_ROWS rows whatever the size."""
    return max(1, int(round(height / ROAD_ROWS)))


def check_roi(mode: str) -> str:
    if mode not in ROI_MODES:
        raise ConfigError(f"roi must be one of {', '.join(ROI_MODES)}, got {mode!r}")
    return mode


def road_region(labels: np.ndarray, margin: int = 0, drop_known: bool = False,
                step: Optional[int] = None) -> np.ndarray:
    """bool [H,W]: the road's extent (rows and columns) from train ids, its border pulled in by `margin`
    pixels; known road users taken out with `drop_known`. `step`: the sampling (default `road_step`)."""
    import cv2

    labels = np.asarray(labels)
    height, width = labels.shape
    step = road_step(height) if step is None else int(step)
    coarse = np.ascontiguousarray(labels[step // 2::step, step // 2::step])
    road = (coarse == ROAD_ID).view(np.uint8)
    h, w = road.shape
    count, components = cv2.connectedComponents(road, connectivity=8, ltype=cv2.CV_16U)
    keep = np.zeros(count, bool)  # the components with a pixel in the lower part of the picture
    keep[components[int(np.ceil(h * (1.0 - BOTTOM_FRACTION))):]] = True
    keep[0] = False
    if not keep.any():
        return np.zeros((height, width), bool)
    drivable = keep[components]
    region = _span(drivable, axis=1) | _span(drivable, axis=0)
    if drop_known:
        region &= ~np.isin(coarse, KNOWN_OBJECTS)
    if margin > 0:
        radius = -(-int(margin) // step)  # at least the margin, on the coarse grid
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        region = cv2.erode(region.view(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE).view(bool)
    if step == 1:
        return region
    return cv2.resize(region.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).view(bool)


def _span(inside: np.ndarray, axis: int) -> np.ndarray:
    """bool: every pixel between the first and the last True along `axis` (rows: axis 1)."""
    n = inside.shape[axis]
    any_ = inside.any(axis=axis)
    first = np.argmax(inside, axis=axis)
    last = n - 1 - np.argmax(np.flip(inside, axis=axis), axis=axis)
    index = np.arange(n)
    if axis == 1:
        out = (index[None, :] >= first[:, None]) & (index[None, :] <= last[:, None])
        return out & any_[:, None]
    out = (index[:, None] >= first[None, :]) & (index[:, None] <= last[None, :])
    return out & any_[None, :]


def region_of_interest(mode: str, labels: np.ndarray, corridor: Optional[np.ndarray] = None, margin: int = 0,
                       drop_known: bool = False) -> Optional[np.ndarray]:
    """bool [H,W] for `mode`, or None for `none` (the whole picture).

    `corridor` (bool [H,W]) is needed by the geometry modes; without it they fall back to `road` (the
    node reports that in /diagnostics), so a frame is never left without a region it could have had.
    """
    check_roi(mode)
    if mode == "none":
        return None
    if mode == "corridor" and corridor is not None:
        return corridor
    region = road_region(labels, margin, drop_known)
    if mode == "road_corridor" and corridor is not None:
        region &= corridor
    return region
