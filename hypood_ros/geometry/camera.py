"""A calibrated camera and where it sits on the vehicle (ROS-free).

`CameraModel` holds the intrinsics and lens distortion of a `sensor_msgs/CameraInfo` (plumb_bob,
rational_polynomial, equidistant) and converts between pixels and normalized rays. Only sparse points
are undistorted (the ground contacts of obstacles), never whole images: a few hundred points per frame
instead of a remap of every pixel. The contacts sit on the lower edges of whole pixels and fall on the
same image rows frame after frame, so through a distorted lens each such row is undistorted once and
kept (`undistort_lower_edges`).

`CameraPose` is the optical frame (z forward, x right, y down) in the vehicle's `base_frame`, whose
z = 0 plane is the road. It comes either from parameters (REP-103 body angles of the camera) or from a
transform (quaternion + translation, as TF gives it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from hypood_ros.errors import ConfigError

#: distortion models this package can undistort; anything else is refused with a message.
DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
_COEFFS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
#: inverse distortion: fixed-point iterations for plumb_bob / rational_polynomial (a fixed count: testing the
#: error each iteration costs as much as iterating; 15 leave < 1e-5 px for a k1 = -0.28 lens across a
#: 1280x720 image), Newton steps to 1e-10 for equidistant
_CRITERIA = (1, 15, 0.0)  # cv2.TERM_CRITERIA_COUNT
_FISHEYE_CRITERIA = (3, 40, 1e-10)  # cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS
#: optical frame axes (z forward, x right, y down) in the camera body frame (x forward, y left, z up)
BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


class CameraError(ConfigError):
    """The camera calibration cannot be used (zero focal length, unknown distortion model, wrong size)."""


@dataclass(frozen=True)
class CameraModel:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = ""  # "" = no distortion
    coeffs: Tuple[float, ...] = ()

    @classmethod
    def from_camera_info(cls, width: int, height: int, k: Sequence[float], d: Sequence[float],
                         distortion_model: str, p: Optional[Sequence[float]] = None,
                         rectified: bool = False) -> "CameraModel":
        """The fields of a CameraInfo message; `rectified`: the image is already rectified, use P and no D."""
        if width <= 0 or height <= 0:
            raise CameraError(f"camera_info has no image size ({width}x{height})")
        if rectified:
            if p is None or len(p) != 12:
                raise CameraError("camera_info P must have 12 entries for a rectified image")
            fx, fy, cx, cy, skew = p[0], p[5], p[2], p[6], p[1]
            model, coeffs = "", ()
        else:
            if len(k) != 9:
                raise CameraError(f"camera_info K must have 9 entries, got {len(k)}")
            fx, fy, cx, cy, skew = k[0], k[4], k[2], k[5], k[1]
            model, coeffs = distortion_model.strip(), tuple(float(c) for c in d)
        if skew != 0:
            raise CameraError(f"camera_info has a non-zero skew ({skew}); only skew-free cameras are supported")
        if not model and any(coeffs):
            raise CameraError("camera_info has distortion coefficients but no distortion_model")
        if not any(coeffs):
            model, coeffs = "", ()
        return cls(int(width), int(height), float(fx), float(fy), float(cx), float(cy), model, coeffs)

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values) or self.fx <= 0 or self.fy <= 0:
            raise CameraError(f"camera_info focal length must be positive and finite (fx={self.fx}, fy={self.fy})")
        if self.distortion_model and self.distortion_model not in DISTORTION_MODELS:
            raise CameraError(f"distortion model {self.distortion_model!r} is not supported; "
                              f"supported: {', '.join(DISTORTION_MODELS)} (or publish a rectified image)")
        if not all(math.isfinite(c) for c in self.coeffs):
            raise CameraError(f"camera_info distortion coefficients must be finite, got {list(self.coeffs)}")
        if self.distortion_model:
            need = _COEFFS[self.distortion_model]
            extra = self.coeffs[need:]
            if len(self.coeffs) < 4 or any(extra):
                raise CameraError(f"{self.distortion_model} takes {need} coefficients, got {len(self.coeffs)}")
            object.__setattr__(self, "coeffs", tuple(self.coeffs[:need]) + (0.0,) * (need - len(self.coeffs)))

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def check_size(self, height: int, width: int) -> None:
        if (height, width) != (self.height, self.width):
            raise CameraError(f"camera_info size {self.width}x{self.height} does not match the image {width}x{height}")

    def undistort(self, u: np.ndarray, v: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (pixel centres at integers) -> normalized undistorted coordinates (x/z, y/z)."""
        u = np.asarray(u, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        if not self.distortion_model or u.size == 0:
            return (u - self.cx) / self.fx, (v - self.cy) / self.fy
        import cv2

        points = np.stack([u, v], axis=-1).reshape(-1, 1, 2)
        coeffs = np.asarray(self.coeffs, dtype=np.float64)
        if self.distortion_model == "equidistant":
            out = cv2.fisheye.undistortPoints(points, self.matrix, coeffs, criteria=_FISHEYE_CRITERIA)
        else:
            out = cv2.undistortPoints(points, self.matrix, coeffs, criteria=_CRITERIA)
        out = out.reshape(-1, 2)
        return out[:, 0].reshape(u.shape), out[:, 1].reshape(u.shape)

    def undistort_lower_edges(self, cols: np.ndarray, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """`undistort` at the midpoints of the lower edges of whole pixels (u = col, v = row + 0.5), where
        obstacles meet the road. Through a distorted lens the iterative inverse costs more than the rest of
        the obstacle geometry, so each row is undistorted whole when a contact first falls on it and looked
        up from then on."""
        cols, rows = np.asarray(cols, dtype=np.int64), np.asarray(rows, dtype=np.int64)
        if not self.distortion_model:
            return self.undistort(cols.astype(np.float64), rows + 0.5)
        table = self.__dict__.get("_lower_edges")
        if table is None:
            table = _RowTable(self)
            object.__setattr__(self, "_lower_edges", table)  # a cache, not a field: equality is unchanged
        return table.lookup(cols, rows)

    def project(self, points: np.ndarray) -> np.ndarray:
        """[N,3] points in the optical frame (z > 0) -> [N,2] distorted pixel coordinates."""
        points = np.asarray(points, dtype=np.float64)
        x, y = points[:, 0] / points[:, 2], points[:, 1] / points[:, 2]
        if self.distortion_model == "equidistant":
            k1, k2, k3, k4 = self.coeffs
            r = np.hypot(x, y)
            theta = np.arctan(r)
            t2 = theta * theta
            theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
            scale = np.where(r > 1e-12, theta_d / np.maximum(r, 1e-12), 1.0)
            x, y = x * scale, y * scale
        elif self.distortion_model:
            k1, k2, p1, p2, k3, *rest = self.coeffs
            k4, k5, k6 = rest if rest else (0.0, 0.0, 0.0)
            r2 = x * x + y * y
            radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
            x, y = (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                    y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)
        return np.stack([self.fx * x + self.cx, self.fy * y + self.cy], axis=1)


class _RowTable:
    """Undistorted lower-edge midpoints of a camera's pixels, filled in one whole row at a time on first use
    (float32: 1e-7 of a normalized coordinate, far below a pixel; untouched rows are never written, so only
    the rows obstacles stand on take memory)."""

    def __init__(self, camera: CameraModel) -> None:
        self.camera = camera
        self.xn = np.empty((camera.height, camera.width), dtype=np.float32)
        self.yn = np.empty((camera.height, camera.width), dtype=np.float32)
        self.filled = np.zeros(camera.height, dtype=bool)

    def lookup(self, cols: np.ndarray, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        if cols.size and (cols.min() < 0 or cols.max() >= self.camera.width or rows.min() < 0
                          or rows.max() >= self.camera.height):
            raise ValueError("pixel outside the camera image")
        seen = self.filled[rows]
        if not seen.all():
            missing = np.unique(rows[~seen])
            width = self.camera.width
            u = np.tile(np.arange(width, dtype=np.float64), len(missing))
            v = np.repeat(missing + 0.5, width)
            xn, yn = self.camera.undistort(u, v)
            self.xn[missing] = xn.reshape(len(missing), width)
            self.yn[missing] = yn.reshape(len(missing), width)
            self.filled[missing] = True
        return self.xn[rows, cols].astype(np.float64), self.yn[rows, cols].astype(np.float64)


def rotation_from_quaternion(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Unit quaternion (ROS order x, y, z, w) -> 3x3 rotation matrix."""
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if not math.isfinite(n) or n < 1e-9:
        raise ConfigError(f"invalid rotation quaternion ({x}, {y}, {z}, {w})")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rotation_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Fixed-axis roll about x, then pitch about y, then yaw about z (URDF / REP-103 convention)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class CameraPose:
    """The camera's optical frame in `base_frame`: p_base = rotation @ p_optical + translation."""

    rotation: np.ndarray  # 3x3
    translation: np.ndarray  # 3

    def __post_init__(self) -> None:
        rotation = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)
        translation = np.asarray(self.translation, dtype=np.float64).reshape(3)
        if not (np.isfinite(rotation).all() and np.isfinite(translation).all()):
            raise ConfigError("camera pose has non-finite values")
        if translation[2] <= 0:
            raise ConfigError(f"the camera must be above the ground plane (z = {translation[2]:.3f} m in base_frame)")
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation", translation)

    @classmethod
    def from_parameters(cls, height: float, roll: float = 0.0, pitch: float = 0.0, yaw: float = 0.0,
                        x: float = 0.0, y: float = 0.0) -> "CameraPose":
        """Camera body (x forward, y left, z up) at (x, y, height), turned by roll/pitch/yaw (radians;
        positive pitch looks down)."""
        return cls(rotation_from_rpy(roll, pitch, yaw) @ BODY_FROM_OPTICAL, np.array([x, y, height]))

    @classmethod
    def from_transform(cls, translation: Sequence[float], quaternion: Sequence[float]) -> "CameraPose":
        """The transform base_frame <- optical frame of the image (TF's lookup_transform(base, image frame))."""
        return cls(rotation_from_quaternion(*quaternion), np.asarray(translation, dtype=np.float64))

    def to_optical(self, points: np.ndarray) -> np.ndarray:
        """[N,3] points in base_frame -> the optical frame (the inverse of the pose)."""
        return (np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.translation) @ self.rotation
