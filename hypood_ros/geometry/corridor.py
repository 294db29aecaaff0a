"""The corridor ahead of the vehicle as a region of interest in the image (ROS-free).

The corridor is the box min_range <= x <= max_range, |y| <= half_width, 0 <= z <= height in `base_frame`
(x forward, y left, z up from the road). A pixel is inside when its ray (from the camera through the
pixel centre, in front of the camera only) passes through the box: whatever stands in the corridor is
then inside with its whole body, not only where it meets the road. A pixel has no depth, so the box also
covers what lies behind it: the road just past `max_range` shows through the far wall, low enough to be
hidden by an obstacle standing at `max_range`, and the road beside the corridor shows through its sides
where the camera looks across them. A camera inside the box (min_range 0, mounted over the corridor below
`height`: the usual case) has it all around, and every pixel is inside. Put `min_range` where the corridor
the camera looks at should begin, past the camera.

Cost. The rays that meet a box form a convex cone with its apex at the camera, spanned by the box's eight
corners. Its faces are the planes through the camera and the box's silhouette edges (at most six; none when
the camera is inside the box), so testing a ray is the sign of a few dot products: one matrix product for
the whole image picks the rays the slab test of each ray picks, at a fraction of its cost. The product
runs on one pixel of each STEP x STEP block (undistorted once per camera and kept); the block takes that
pixel's value. A pixel can therefore differ from the exact per-pixel test only where a pixel of the other
exact value lies within STEP // 2 = 2 pixels along both image axes: in a band that deep on either side of
the corridor's outline (a sliver thinner than a block may be lost whole; it lies in that band too). The
last few results are kept by camera, pose and corridor, so an unchanged pose costs a dictionary lookup.
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import Tuple

import numpy as np

from hypood_ros.errors import ConfigError
from hypood_ros.geometry.camera import CameraModel, CameraPose

#: pixels per side of the blocks that share one ray test (1, 2, 4 or 8: a row is widened by byte copies)
STEP = 4
#: Chebyshev distance in pixels from a pixel that differs from the exact test to a pixel of the other value
EDGE_PIXELS = STEP // 2
_CHUNK = 32768  # sample rays per matrix product

_CORNERS = np.array(list(itertools.product((False, True), repeat=3)))  # which corners take `hi` per axis
_PAIRS = np.array(list(itertools.combinations(range(8), 2)))


def corridor_mask(camera: CameraModel, pose: CameraPose, half_width: float, max_range: float,
                  height: float = 2.0, min_range: float = 0.0) -> np.ndarray:
    """bool [H, W] at the camera's size: pixels whose ray meets the corridor box in front of the camera.

    The array is read-only and shared by calls with the same camera, pose and corridor (copy it to edit)."""
    half_width = _metres("half_width", half_width)
    max_range = _metres("max_range", max_range)
    height = _metres("height", height)
    try:
        start = float(min_range)
    except (TypeError, ValueError):
        start = math.nan
    if not 0.0 <= start < max_range:
        raise ConfigError(f"corridor min_range must be at least 0 and below max_range ({max_range:g} m), "
                          f"got {min_range!r}")
    box = (start, -half_width, 0.0, max_range, half_width, height)
    return _mask(camera, pose.rotation.tobytes(), pose.translation.tobytes(), box)


def _metres(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"corridor {name} must be a positive number of metres, got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"corridor {name} must be a positive number of metres, got {value!r}")
    return value


@functools.lru_cache(maxsize=4)
def _mask(camera: CameraModel, rotation: bytes, translation: bytes, box: Tuple[float, ...]) -> np.ndarray:
    """The mask for one camera, pose (as bytes: a TF pose is a new object every frame) and box."""
    rotation_m = np.frombuffer(rotation, dtype=np.float64).reshape(3, 3)
    origin = np.frombuffer(translation, dtype=np.float64)
    planes = _cone_planes(origin, np.array(box[:3]), np.array(box[3:]))
    rays = _sample_rays(camera)
    coarse = np.ones(rays.shape[1], dtype=bool)
    if len(planes):
        # n . (R p) >= 0 for every face normal n, with p = (x/z, y/z, 1) the sample's optical ray. In chunks:
        # BLAS may spread one product over the whole image across threads, which costs more than it saves
        # on so little arithmetic (ten times more at 1920x1080 here), and a chunk's values stay in cache.
        normals = planes @ rotation_m
        for start in range(0, rays.shape[1], _CHUNK):
            part = slice(start, start + _CHUNK)
            np.greater_equal(np.minimum.reduce(normals @ rays[:, part], axis=0), 0.0, out=coarse[part])
    h, w = _grid_shape(camera)
    mask = _spread(coarse.reshape(h, w), camera.height, camera.width)
    mask.flags.writeable = False
    return mask


def _cone_planes(origin: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """[K,3] normals n with n . d >= 0 for the directions d whose ray from `origin` meets the box.

    The cone over the corners is the set of such directions. A plane through the origin and two corners is
    a face of it when no corner lies on its other side (every face holds two corners); from inside the box
    no plane qualifies and every direction counts. Collinear pairs span no plane and are skipped."""
    corners = np.where(_CORNERS, hi, lo) - origin
    normals = np.cross(corners[_PAIRS[:, 0]], corners[_PAIRS[:, 1]])
    size = np.linalg.norm(normals, axis=1)
    reach = float(np.linalg.norm(corners, axis=1).max())
    side = normals @ corners.T
    tol = (1e-9 * reach * size)[:, None]
    real = size > 1e-12 * reach * reach
    up = real & (side >= -tol).all(axis=1)
    down = real & (side <= tol).all(axis=1)
    return np.concatenate([normals[up], -normals[down]])


def _grid_shape(camera: CameraModel) -> Tuple[int, int]:
    return -(-camera.height // STEP), -(-camera.width // STEP)


@functools.lru_cache(maxsize=4)
def _sample_rays(camera: CameraModel) -> np.ndarray:
    """[3, h*w] optical rays (x/z, y/z, 1) through one pixel centre of each block: the block's middle pixel,
    or its last one in a partial block at the image's right or bottom edge. Depends on the camera only."""
    h, w = _grid_shape(camera)
    v = np.minimum(np.arange(h) * STEP + EDGE_PIXELS, camera.height - 1).astype(np.float64)
    u = np.minimum(np.arange(w) * STEP + EDGE_PIXELS, camera.width - 1).astype(np.float64)
    xn, yn = camera.undistort(*np.meshgrid(u, v))
    rays = np.stack([xn.ravel(), yn.ravel(), np.ones(h * w)])
    rays.flags.writeable = False
    return rays


def _spread(coarse: np.ndarray, height: int, width: int) -> np.ndarray:
    """Each coarse value over its STEP x STEP block, cropped to the image. A row is widened by reading each
    value as one STEP-byte integer times 0x01..01 (a byte copied STEP times), then copied STEP times down:
    both are whole-array operations, unlike a per-element repeat."""
    h, w = coarse.shape
    kind = np.dtype(f"<u{STEP}")
    ones = np.array(int.from_bytes(b"\x01" * STEP, "little"), dtype=kind)
    rows = (coarse.view(np.uint8).astype(kind) * ones).view(np.uint8)  # [h, w * STEP]
    full = np.empty((h, STEP, w * STEP), dtype=np.uint8)
    full[:] = rows[:, None, :]
    full = full.reshape(h * STEP, w * STEP)
    if full.shape != (height, width):
        full = np.ascontiguousarray(full[:height, :width])
    return full.view(bool)
