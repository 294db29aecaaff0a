"""Corridor region of interest: known points seen through pinhole and distorted lenses, and the whole mask
against an exact slab test of every pixel's ray."""
import functools
import math

import cv2
import numpy as np
import pytest
from road_scene import POSE, cameras

from hypood_ros.errors import ConfigError
from hypood_ros.geometry import CameraModel, CameraPose, corridor_mask
from hypood_ros.geometry.corridor import EDGE_PIXELS, STEP

# min_range 8 puts the box ahead of the camera: from inside it (min_range 0) every ray counts
CORRIDOR = dict(half_width=2.0, max_range=40.0, height=2.0, min_range=8.0)
LEVEL = CameraPose.from_parameters(1.5)  # at the base_frame origin, looking along x
TURNED = CameraPose.from_parameters(1.5, roll=0.02, pitch=0.1, yaw=0.15)  # same place, pitched down, yawed left
ABOVE = CameraPose.from_parameters(3.0, pitch=0.05, x=20.0)  # over the middle of the corridor, above its top
PINHOLE, PLUMB_BOB, EQUIDISTANT = cameras()


@functools.lru_cache(maxsize=None)
def _optical_rays(camera: CameraModel) -> np.ndarray:
    v, u = np.mgrid[0:camera.height, 0:camera.width]
    xn, yn = camera.undistort(u.ravel().astype(np.float64), v.ravel().astype(np.float64))
    return np.stack([xn, yn, np.ones_like(xn)], axis=1)


def exact_mask(camera, pose, half_width, max_range, height=2.0, min_range=0.0, ahead=True):
    """Slab test of the ray through every pixel centre; `ahead=False` counts the box behind the camera too."""
    rays = _optical_rays(camera) @ pose.rotation.T
    lo = np.array([min_range, -half_width, 0.0]) - pose.translation
    hi = np.array([max_range, half_width, height]) - pose.translation
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / rays
        t1, t2 = lo * inv, hi * inv
        near = np.nanmax(np.minimum(t1, t2), axis=1)  # NaN: a ray in a face's plane, that axis does not limit
        far = np.nanmin(np.maximum(t1, t2), axis=1)
    hit = (near <= far) & (far > 0) if ahead else near <= far
    return hit.reshape(camera.height, camera.width)


def pixel(camera, pose, point):
    """Row and column of the pixel that sees a base_frame point."""
    optical = (np.asarray(point, dtype=np.float64) - pose.translation) @ pose.rotation
    assert optical[2] > 0
    u, v = camera.project(optical[None])[0]
    row, col = int(round(v)), int(round(u))
    assert 0 <= row < camera.height and 0 <= col < camera.width, (point, u, v)
    return row, col


def seen(mask, camera, pose, point):
    """The mask around the point's pixel, which must agree: no block of the coarse grid decides it."""
    row, col = pixel(camera, pose, point)
    r = EDGE_PIXELS + 1
    around = mask[max(row - r, 0):row + r + 1, max(col - r, 0):col + r + 1]
    assert around.all() or not around.any(), point
    return bool(mask[row, col])


@pytest.mark.parametrize("camera", [PINHOLE, PLUMB_BOB], ids=lambda c: c.distortion_model or "pinhole")
@pytest.mark.parametrize("pose", [LEVEL, TURNED], ids=["level", "pitched_yawed"])
def test_known_points_inside_and_outside(camera, pose):
    mask = corridor_mask(camera, pose, **CORRIDOR)
    assert mask.shape == (camera.height, camera.width) and mask.dtype == bool
    assert seen(mask, camera, pose, (10.0, 0.0, 0.0))  # road in the corridor
    assert seen(mask, camera, pose, (10.0, 0.0, 1.0))  # body of an obstacle standing on it
    # beside the corridor: the ray leaves the side (y = 2) at x = 6.7, before min_range
    assert not seen(mask, camera, pose, (10.0, 3.0, 0.0))
    # above it: the ray is at z = 2.7 where the corridor starts and climbs on
    assert not seen(mask, camera, pose, (10.0, 0.0, 3.0))
    row, col = pixel(camera, pose, (10.0, 0.0, 3.0))
    assert not mask[:row].any()  # everything higher up, the sky included
    # the road 5 m past max_range shows through the far wall 0.17 m above the road: an obstacle standing at
    # max_range would hide it, so it is inside a 2 m corridor; a 0.1 m corridor keeps only the road itself
    assert seen(mask, camera, pose, (45.0, 0.0, 0.0))
    low = corridor_mask(camera, pose, **dict(CORRIDOR, height=0.1))
    assert seen(low, camera, pose, (35.0, 0.0, 0.0))
    assert not seen(low, camera, pose, (60.0, 0.0, 0.0))


def test_a_camera_inside_the_corridor_sees_it_everywhere():
    assert corridor_mask(PINHOLE, LEVEL, **dict(CORRIDOR, min_range=0.0)).all()
    assert exact_mask(PINHOLE, LEVEL, **dict(CORRIDOR, min_range=0.0)).all()


@pytest.mark.parametrize("pose", [ABOVE, CameraPose.from_parameters(1.5, yaw=math.pi)], ids=["above", "rear"])
def test_rays_that_meet_the_corridor_only_behind_the_camera_are_outside(pose):
    """From above the corridor, rays looking up meet it only when followed backwards and down; a camera
    looking back has the whole corridor behind it."""
    mask = corridor_mask(PINHOLE, pose, **CORRIDOR)
    line = exact_mask(PINHOLE, pose, **CORRIDOR, ahead=False)
    behind_only = line & ~exact_mask(PINHOLE, pose, **CORRIDOR)
    assert behind_only.sum() > 10000
    assert not mask[behind_only].any()
    if pose is ABOVE:
        assert behind_only[0, 540:740].all() and mask[-1].all()  # sky with the corridor behind; its top ahead
        assert seen(mask, PINHOLE, pose, (30.0, 0.0, 1.0)) and not seen(mask, PINHOLE, pose, (30.0, 4.0, 2.5))
    else:
        assert not mask.any()


@pytest.mark.parametrize("camera", [PINHOLE, PLUMB_BOB, EQUIDISTANT,
                                    CameraModel(642, 481, 600.0, 600.0, 320.0, 240.0),
                                    CameraModel(642, 481, 600.0, 595.0, 321.0, 239.0, "plumb_bob",
                                                (-0.28, 0.09, 0.0008, -0.0006, 0.0))],
                         ids=["pinhole", "plumb_bob", "equidistant", "odd_size", "odd_size_plumb_bob"])
@pytest.mark.parametrize("pose", [LEVEL, TURNED, ABOVE, CameraPose.from_parameters(**POSE)],
                         ids=["level", "pitched_yawed", "above", "road_scene"])
def test_mask_differs_from_the_exact_test_only_next_to_its_edge(camera, pose):
    """Each block of STEP x STEP pixels takes the exact value of one of its pixels, so a pixel can differ only
    with a pixel of the other exact value within EDGE_PIXELS along both axes."""
    mask = corridor_mask(camera, pose, **CORRIDOR)
    exact = exact_mask(camera, pose, **CORRIDOR)
    assert mask.shape == exact.shape and mask.flags.c_contiguous
    rows = np.minimum(np.arange(0, camera.height, STEP) + STEP // 2, camera.height - 1)
    cols = np.minimum(np.arange(0, camera.width, STEP) + STEP // 2, camera.width - 1)
    assert np.array_equal(mask[np.ix_(rows, cols)], exact[np.ix_(rows, cols)])  # the tested pixels: exact
    window = np.ones((2 * EDGE_PIXELS + 1,) * 2, np.uint8)
    values = exact.astype(np.uint8)
    near_edge = (cv2.dilate(values, window) != cv2.erode(values, window)).astype(bool)
    differ = mask != exact
    assert not (differ & ~near_edge).any()
    assert 0.02 < exact.mean() < 0.98 and differ.any()  # an edge to test, and the mask does not cover it up


def test_results_are_kept_for_the_same_camera_pose_and_corridor():
    first = corridor_mask(PINHOLE, TURNED, **CORRIDOR)
    assert not first.flags.writeable
    same = CameraPose(TURNED.rotation.copy(), TURNED.translation.copy())  # a TF pose is a new object each frame
    assert corridor_mask(PINHOLE, same, **CORRIDOR) is first
    assert corridor_mask(PINHOLE, LEVEL, **CORRIDOR) is not first
    assert corridor_mask(PINHOLE, TURNED, **dict(CORRIDOR, half_width=2.5)) is not first


@pytest.mark.parametrize("name,value", [("half_width", 0.0), ("half_width", -1.0), ("max_range", 0),
                                        ("max_range", math.inf), ("height", -2.0), ("height", math.nan),
                                        ("half_width", "wide")])
def test_sizes_must_be_positive_metres(name, value):
    with pytest.raises(ConfigError, match=f"corridor {name} must be a positive number of metres") as info:
        corridor_mask(PINHOLE, LEVEL, **dict(CORRIDOR, **{name: value}))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value", [-1.0, 40.0, 50.0])
def test_min_range_must_lie_before_max_range(value):
    with pytest.raises(ConfigError, match="corridor min_range must be at least 0 and below max_range"):
        corridor_mask(PINHOLE, LEVEL, **dict(CORRIDOR, min_range=value))
