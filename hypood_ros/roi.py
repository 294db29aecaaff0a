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

Whatever the mode, the pixels of the vehicle itself (bonnet, mounts: `ego_mask`, a picture of them)
are never in the region: they are in every frame, and their edge scores as high as an obstacle.

ROS-free and cheap: the road extent is formed on a grid of about `ROAD_ROWS` rows (every `step`-th row and
column of the labels) and brought back block by block, so its border is `step` pixels
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
    return region if step == 1 else _expand(region, step, height, width)


def _expand(coarse: np.ndarray, step: int, height: int, width: int) -> np.ndarray:
    """Each coarse pixel back over the step x step block it was sampled from (the last row and column repeat
    where the size is no multiple of `step`); about half the time of OpenCV's nearest resize here."""
    wide = np.repeat(coarse, step, axis=1)
    if wide.shape[1] < width:
        wide = np.concatenate([wide, np.repeat(wide[:, -1:], width - wide.shape[1], axis=1)], axis=1)
    wide = wide[:, :width]
    rows = coarse.shape[0] * step
    full = np.broadcast_to(wide[:, None, :], (coarse.shape[0], step, width)).reshape(rows, width)
    if rows < height:
        full = np.concatenate([full, np.repeat(full[-1:], height - rows, axis=0)], axis=0)
    return full[:height]


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


def load_ego_mask(path) -> np.ndarray:
    """bool [h,w] from an image file: nonzero pixels (any channel) are the vehicle itself. ConfigError if unusable."""
    from hypood_ros.errors import FrameError
    from hypood_ros.images import read_image

    try:
        image = read_image(path)
    except FrameError as exc:
        raise ConfigError(f"ego_mask {path}: {exc}") from None
    mask = image.any(axis=2)
    if mask.all():
        raise ConfigError(f"ego_mask {path}: every pixel is marked as the vehicle (nonzero = vehicle); the region "
                          "would be empty")
    return mask


def ego_at(ego: Optional[np.ndarray], shape) -> Optional[np.ndarray]:
    """The ego mask at a frame's size (nearest neighbour), or None."""
    if ego is None or ego.shape == tuple(shape):
        return ego
    import cv2

    return cv2.resize(ego.view(np.uint8), (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_NEAREST).view(bool)


def region_of_interest(mode: str, labels: np.ndarray, corridor: Optional[np.ndarray] = None, margin: int = 0,
                       drop_known: bool = False, ego: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """bool [H,W] for `mode`, or None for `none` without an ego mask (the whole picture). `ego`: bool, the
    pixels of the vehicle itself at any size (brought to the labels' size), left out in every mode.

    `corridor` (bool [H,W]) is needed by the geometry modes; without it they fall back to `road` (the
    node reports that in /diagnostics), so a frame is never left without a region it could have had.
    """
    check_roi(mode)
    ego = ego_at(ego, labels.shape)
    if mode == "none":
        return None if ego is None else ~ego
    if mode == "corridor" and corridor is not None:
        region = corridor.copy()
    else:
        region = road_region(labels, margin, drop_known)
        if mode == "road_corridor" and corridor is not None:
            region &= corridor
    if ego is not None:
        region &= ~ego
    return region
