"""OOD mask -> obstacles on the road: position, width, range and score statistics in `base_frame` (ROS-free).

Each connected component of the mask is one obstacle. Its ground contact is the lowest mask pixel of
each of its image columns (the bottom edge of that pixel, where the object meets the road); only those
points are intersected with the ground plane z = 0. Pixels of the object's body lie above the road and
would project beyond the object, so they are never used for position. Contacts whose ray does not reach
the ground (at or above the horizon) or that land beyond `max_range` are discarded; components left
without a contact are dropped and counted.

The same contacts also bound the road the camera saw free: per image column, from the bottom of the
image to the nearest mask pixel (or `max_range`). That polygon feeds the grid's free-space evidence.
Pixels and contacts are handled by vectorized numpy and OpenCV calls; the one Python loop runs over the
kept obstacles (their pixel count and score statistics, computed in C inside each bounding box).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from hypood_ros.errors import ConfigError
from hypood_ros.geometry.camera import CameraModel, CameraPose

#: rays must point at least this far below the horizon (direction z component) to meet the ground
MIN_DEPRESSION = 1e-6
FREE_COLUMN_STEP = 8  # image columns between two vertices of the free-space polygon
#: rows per column above which the end columns of a component are taken for a leaning vertical edge.
#: A ground outline is this steep only when it runs almost along the line of sight close to the camera
#: (an object side less than about camera height / 4 to the side); those end columns are then lost too.
STEEP_ROWS = 4


@dataclass
class Obstacles:
    """Obstacles of one frame, as arrays over obstacles (N) and their ground-contact points (M)."""

    x: np.ndarray  # [N] centroid of the contact points, metres in base_frame
    y: np.ndarray
    range: np.ndarray  # [N] distance from the base_frame origin to the nearest contact point
    width: np.ndarray  # [N] extent of the contacts across the line of sight
    depth: np.ndarray  # [N] extent of the contacts along the line of sight
    height: np.ndarray  # [N] top of the component at the obstacle's distance (an estimate)
    score_mean: np.ndarray  # [N] over the component's pixels (NaN when no score map was given)
    score_max: np.ndarray
    pixels: np.ndarray  # [N] component area in pixels
    points: np.ndarray  # [M,3] ground contacts (z = 0) of the kept obstacles
    point_obstacle: np.ndarray  # [M] index of each point's obstacle
    above_horizon: int = 0  # components dropped: no contact below the horizon
    too_far: int = 0  # components dropped: every contact beyond max_range
    free_polygon: Optional[np.ndarray] = None  # [K,2] road seen free this frame (base_frame), None if none

    def __len__(self) -> int:
        return len(self.x)


def ground_points(camera: CameraModel, pose: CameraPose, u: np.ndarray, v: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Pixels -> ([N,3] rays in base_frame, [N] ray parameter s of the ground hit; NaN at/above the horizon).

    The ground point is pose.translation + s * ray."""
    return _to_ground(pose, *camera.undistort(u, v))


def _to_ground(pose: CameraPose, xn: np.ndarray, yn: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """`ground_points` from normalized (undistorted) coordinates."""
    rays = np.stack([xn, yn, np.ones_like(xn)], axis=1) @ pose.rotation.T
    down = rays[:, 2] < -MIN_DEPRESSION
    s = np.full(len(rays), np.nan)
    s[down] = -pose.translation[2] / rays[down, 2]
    return rays, s


def _label(roi: np.ndarray):
    """8-connected components (OpenCV; 16-bit labels, 32-bit for masks with more than 65535 components).
    Their statistics are computed later and only for the components that are kept."""
    import cv2

    try:
        return cv2.connectedComponents(roi, connectivity=8, ltype=cv2.CV_16U)
    except cv2.error:
        return cv2.connectedComponents(roi, connectivity=8, ltype=cv2.CV_32S)


def _contacts(mask: np.ndarray):
    """Lowest pixel of each (component, column), sorted by (component, column): rows, cols, component
    labels (1..count-1) and a flag for the contacts kept (not on a leaning edge); count, labels, and the
    offset of the region of interest. Work is confined to the bounding box of the mask."""
    import cv2

    x0, y0, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return None
    roi = mask[y0:y0 + h, x0:x0 + w]
    count, labels = _label(roi)
    bottom = np.empty(roi.shape, dtype=bool)  # set pixel with an unset pixel below (mask is 0/255 or 0/1)
    np.greater(roi[:-1], roi[1:], out=bottom[:-1])
    np.greater(roi[-1], 0, out=bottom[-1])
    index = np.flatnonzero(bottom)  # row-major order (a 1-D scan of a bool image is the fastest one here)
    rows, cols = np.divmod(index, w)
    comp = labels[rows, cols].astype(np.int64)
    # rows come sorted ascending: the last occurrence of each (component, column) is its lowest pixel
    key = comp * w + cols
    _, last = np.unique(key[::-1], return_index=True)  # sorted by (component, column)
    pick = len(key) - 1 - last
    rows, cols, comp = rows[pick], cols[pick], comp[pick]
    keep = ~_slanted_ends(rows, comp)
    keep |= np.bincount(comp[keep], minlength=count)[comp] == 0  # a component never loses all its contacts
    return rows, cols, comp, keep, count, labels, (x0, y0)


def _component_stats(labels: np.ndarray, kept: np.ndarray, left: np.ndarray, right: np.ndarray,
                     bottom: np.ndarray, score: Optional[np.ndarray], offset):
    """Pixel count, top row, and mean and max score of each kept component, each computed in C inside the
    component's bounding box (region-of-interest coordinates).

    The box's columns and bottom row are known from the contacts; its top is found by looking upwards in
    growing windows: a component inside its own columns that leaves a window's first row empty cannot
    continue above it (an 8-connected path changes row one at a time)."""
    import cv2

    n = len(kept)
    area, top = np.zeros(n, dtype=np.int32), np.zeros(n, dtype=np.int64)
    mean, peak = np.full(n, np.nan), np.full(n, np.nan)
    x0, y0 = offset
    for j, i in enumerate(kept):
        lo, hi, end = int(left[j]), int(right[j]) + 1, int(bottom[j]) + 1
        window = max(32, 2 * (hi - lo))
        while True:
            start = max(0, end - window)
            inside = (labels[start:end, lo:hi] == i).view(np.uint8)
            _, up, _, height = cv2.boundingRect(inside)
            if up > 0 or start == 0:
                break
            window *= 4
        inside = inside[up:up + height]
        up += start
        area[j], top[j] = cv2.countNonZero(inside), up
        if score is not None:
            values = score[y0 + up:y0 + up + height, x0 + lo:x0 + hi]
            mean[j] = cv2.mean(values, inside)[0]
            peak[j] = cv2.minMaxLoc(values, inside)[1]
    return area, top, mean, peak


def _slanted_ends(rows: np.ndarray, comp: np.ndarray) -> np.ndarray:
    """Columns at either end of a component whose lowest pixel climbs steeply towards the end.

    Seen by a pitched camera, an object's vertical edges lean in the image, so the outermost columns of
    its silhouette hold only the upper part of an edge: their lowest pixel is on the body, not on the
    road, and would project far behind the object. Those columns (contacts sorted by component, column)
    are the leading/trailing runs where the row changes by more than STEEP_ROWS per column."""
    n = len(rows)
    if n < 2:
        return np.zeros(n, dtype=bool)
    same = comp[1:] == comp[:-1]
    rise = np.diff(rows.astype(np.int64))
    steep_left = np.zeros(n, dtype=bool)  # next column (same component) is much lower in the image
    steep_left[:-1] = same & (rise > STEEP_ROWS)
    steep_right = np.zeros(n, dtype=bool)  # previous column is much lower
    steep_right[1:] = same & (-rise > STEEP_ROWS)
    return _leading_run(steep_left, comp) | _leading_run(steep_right[::-1], comp[::-1])[::-1]


def _leading_run(flag: np.ndarray, group: np.ndarray) -> np.ndarray:
    """True for the elements of each run of equal `group` values before the group's first False flag."""
    start = np.ones(len(flag), dtype=bool)
    start[1:] = group[1:] != group[:-1]
    clear = np.cumsum(~flag)  # False flags so far
    starts = np.flatnonzero(start)
    before = np.zeros(len(starts), dtype=clear.dtype)
    before[1:] = clear[starts[1:] - 1]  # False flags before each group
    return clear == np.repeat(before, np.diff(np.append(starts, len(flag))))


def find_obstacles(mask: np.ndarray, camera: CameraModel, pose: CameraPose, max_range: float,
                   score: Optional[np.ndarray] = None, free_space: bool = True) -> Obstacles:
    """mask: HxW uint8 (non-zero = OOD) at the camera's size; score: HxW float32 or None."""
    if not (isinstance(max_range, (int, float)) and max_range > 0 and np.isfinite(max_range)):
        raise ConfigError(f"max_range must be a positive number of metres, got {max_range!r}")
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    camera.check_size(*mask.shape)
    if score is not None:
        score = np.asarray(score, dtype=np.float32)
        if score.shape != mask.shape:
            raise ValueError(f"score map {score.shape} and mask {mask.shape} differ in size")
    found = _contacts(mask)
    if found is None:
        empty = _empty()
        if free_space:
            empty.free_polygon = free_polygon(camera, pose, np.full(camera.width, -1, np.int64), max_range)
        return empty
    all_rows, all_cols, all_comp, on_ground, count, labels, (x0, y0) = found
    rows, cols, comp = all_rows[on_ground], all_cols[on_ground], all_comp[on_ground]
    rays, s = _to_ground(pose, *camera.undistort_lower_edges(cols + x0, rows + y0))  # bottom edge of the pixel
    p = pose.translation[None, :2] + s[:, None] * rays[:, :2]
    rng = np.hypot(p[:, 0], p[:, 1])
    hits = np.isfinite(s)
    valid = hits & (rng <= max_range)

    # per component: kept if any contact is valid; otherwise dropped as above the horizon or too far
    any_valid = np.bincount(comp[valid], minlength=count) > 0
    any_hit = np.bincount(comp[hits], minlength=count) > 0
    present = np.bincount(comp, minlength=count) > 0
    above = int(np.count_nonzero(present & ~any_hit))
    too_far = int(np.count_nonzero(any_hit & ~any_valid))
    kept = np.flatnonzero(any_valid)
    index = np.full(count, -1, dtype=np.int64)
    index[kept] = np.arange(len(kept))
    n = len(kept)

    obj = index[comp[valid]]
    pts = p[valid]
    r = rng[valid]
    npts = np.bincount(obj, minlength=n)
    cx = np.bincount(obj, weights=pts[:, 0], minlength=n) / npts
    cy = np.bincount(obj, weights=pts[:, 1], minlength=n) / npts
    nearest = np.full(n, np.inf)
    np.minimum.at(nearest, obj, r)
    norm = np.maximum(np.hypot(cx, cy), 1e-9)
    bx, by = cx / norm, cy / norm
    along = pts[:, 0] * bx[obj] + pts[:, 1] * by[obj]
    across = -pts[:, 0] * by[obj] + pts[:, 1] * bx[obj]
    width = _extent(obj, across, n)
    depth = _extent(obj, along, n)

    # column span and lowest row of each kept component (contacts are sorted by component, column)
    first = np.searchsorted(all_comp, kept, side="left")
    last = np.searchsorted(all_comp, kept, side="right") - 1
    lowest_row = np.zeros(count, dtype=np.int64)
    np.maximum.at(lowest_row, all_comp, all_rows)
    area, top, score_mean, score_max = _component_stats(labels, kept, all_cols[first], all_cols[last],
                                                        lowest_row[kept], score, (x0, y0))

    # height: the component's top row seen at the obstacle's distance from the camera
    top_rays, _ = ground_points(camera, pose, (x0 + (all_cols[first] + all_cols[last]) / 2.0).astype(np.float64),
                                (top + y0).astype(np.float64) - 0.5)
    horizontal = np.maximum(np.hypot(top_rays[:, 0], top_rays[:, 1]), 1e-9)
    distance = np.hypot(cx - pose.translation[0], cy - pose.translation[1])
    height = np.maximum(pose.translation[2] + distance * top_rays[:, 2] / horizontal, 0.0)

    result = Obstacles(
        x=cx.astype(np.float32), y=cy.astype(np.float32), range=nearest.astype(np.float32),
        width=width.astype(np.float32), depth=depth.astype(np.float32), height=height.astype(np.float32),
        score_mean=score_mean.astype(np.float32), score_max=score_max.astype(np.float32),
        pixels=area,
        points=np.column_stack([pts, np.zeros(len(pts))]).astype(np.float32), point_obstacle=obj.astype(np.int32),
        above_horizon=above, too_far=too_far)
    if free_space:
        lowest = np.full(camera.width, -1, dtype=np.int64)
        np.maximum.at(lowest, all_cols + x0, all_rows + y0)
        result.free_polygon = free_polygon(camera, pose, lowest, max_range)
    return result


def _extent(group: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    hi = np.full(n, -np.inf)
    lo = np.full(n, np.inf)
    np.maximum.at(hi, group, values)
    np.minimum.at(lo, group, values)
    return hi - lo


_free_cache: tuple = ()  # (camera, pose, max_range, columns, near, far, ok) of the last call


def _free_fan(camera: CameraModel, pose: CameraPose, max_range: float):
    """Per sampled column: the ground point of the bottom row and the far end of the column's ground line
    at `max_range`. Depends only on camera, pose and range, so it is kept for the next frame."""
    global _free_cache
    if _free_cache and _free_cache[0] is camera and _free_cache[1] is pose and _free_cache[2] == max_range:
        return _free_cache[3:]
    u = np.unique(np.append(np.arange(0, camera.width, FREE_COLUMN_STEP), camera.width - 1)).astype(np.float64)
    bottom = float(camera.height) - 0.5
    rays, s = ground_points(camera, pose, np.concatenate([u, u]),
                            np.concatenate([np.full(len(u), bottom), np.full(len(u), bottom - 1.0)]))
    g = pose.translation[None, :2] + s[:, None] * rays[:, :2]
    near, second = g[:len(u)], g[len(u):]
    e = second - near
    e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    b = np.sum(near * e, axis=1)
    disc = b * b - np.sum(near * near, axis=1) + max_range ** 2
    far = near + (-b + np.sqrt(np.maximum(disc, 0.0)))[:, None] * e
    ok = np.isfinite(s[:len(u)]) & np.isfinite(s[len(u):]) & (disc > 0)
    _free_cache = (camera, pose, max_range, u.astype(np.int64), near, far, ok)
    return _free_cache[3:]


def free_polygon(camera: CameraModel, pose: CameraPose, lowest: np.ndarray, max_range: float) -> Optional[np.ndarray]:
    """Road seen free: per sampled column, from the image's bottom row to the nearest mask pixel (`lowest`
    row per column, -1 where none) or to `max_range`. Returns [K,2] polygon vertices in base_frame."""
    columns, near, far, ok = _free_fan(camera, pose, max_range)
    if np.count_nonzero(ok) < 2:
        return None
    low = lowest[columns]
    masked = np.flatnonzero(low >= 0)
    if len(masked):
        far = far.copy()
        rays, s = _to_ground(pose, *camera.undistort_lower_edges(columns[masked], low[masked]))
        contact = pose.translation[None, :2] + s[:, None] * rays[:, :2]
        use = np.isfinite(s) & (np.hypot(contact[:, 0], contact[:, 1]) <= max_range)
        far[masked[use]] = contact[use]
    return np.concatenate([near[ok], far[ok][::-1]]).astype(np.float32)


def _empty() -> Obstacles:
    f = np.zeros(0, dtype=np.float32)
    return Obstacles(x=f, y=f, range=f, width=f, depth=f, height=f, score_mean=f, score_max=f,
                     pixels=np.zeros(0, np.int32), points=np.zeros((0, 3), np.float32),
                     point_obstacle=np.zeros(0, np.int32))
