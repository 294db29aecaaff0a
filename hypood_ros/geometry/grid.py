"""A local occupancy grid around the vehicle with log-odds evidence from each frame (ROS-free).

Each frame adds `hit` to the cells holding a ground contact and `miss` to the cells of the road seen
free, after multiplying all evidence by `decay` (so what is no longer seen fades back to unknown).
A cell is occupied at log-odds >= `occupied`, free at <= `free`, unknown in between. One detection
(`hit` < `occupied`) is never enough: a false positive of a single frame does not become an obstacle.

Evidence only lines up across frames in a fixed frame: with odometry the grid lives in the odometry
frame, axis-aligned, and scrolls by whole cells so the vehicle stays at its centre. Without odometry
there is no fixed frame, so the grid is rebuilt from each frame alone in `base_frame` (hits occupied,
seen road free).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import numpy as np

from hypood_ros.defaults import default
from hypood_ros.errors import ConfigError

LOGODDS_LIMIT = 5.0  # clamp, so a long-seen cell can still clear within a few frames
_SHIFT = 4  # fixed-point bits for sub-cell polygon filling
UNKNOWN, FREE, OCCUPIED = -1, 0, 100


@dataclass(frozen=True)
class GridConfig:
    size: float = default("grid_size")  # metres, side of the square window centred on the vehicle
    resolution: float = default("grid_resolution")  # metres per cell
    hit: float = default("grid_hit")  # log-odds added to a cell holding a ground contact
    miss: float = default("grid_miss")  # log-odds added to a cell of road seen free (negative)
    decay: float = default("grid_decay")  # fraction of the evidence kept from one frame to the next
    occupied: float = default("grid_occupied")  # log-odds at or above which a cell is occupied
    free: float = default("grid_free")  # log-odds at or below which a cell is free

    def __post_init__(self) -> None:
        for name in ("size", "resolution", "hit", "miss", "decay", "occupied", "free"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"grid_{name} must be a finite number, got {value!r}")
        if self.resolution <= 0 or self.size < 2 * self.resolution:
            raise ConfigError(f"grid_size ({self.size}) must hold at least two cells of grid_resolution "
                              f"({self.resolution})")
        if self.size / self.resolution > 4000:
            raise ConfigError(f"grid of {self.size / self.resolution:.0f} cells per side is too large (at most 4000)")
        if not 0.0 <= self.decay <= 1.0:
            raise ConfigError(f"grid_decay must be in [0, 1], got {self.decay}")
        if self.hit <= 0 or self.miss > 0:
            raise ConfigError("grid_hit must be positive and grid_miss negative or zero")
        if not self.free < self.occupied:
            raise ConfigError(f"grid_free ({self.free}) must be below grid_occupied ({self.occupied})")


class LocalGrid:
    def __init__(self, config: Optional[GridConfig] = None) -> None:
        self.config = config or GridConfig()
        self.cells = int(round(self.config.size / self.config.resolution))
        self.logodds = np.zeros((self.cells, self.cells), dtype=np.float32)  # [row = y, col = x]
        self._labels = np.zeros((self.cells, self.cells), dtype=np.uint8)  # 0 none, 1 free, 2 hit (this frame)
        self._delta = np.array([0.0, self.config.miss, self.config.hit], dtype=np.float32)
        self.origin: Optional[Tuple[float, float]] = None  # corner of cell (0, 0) in the grid frame
        self.accumulating = True

    def reconfigure(self, config: GridConfig) -> None:
        """New evidence settings, keeping the evidence gathered so far (size and resolution must not change)."""
        if (config.size, config.resolution) != (self.config.size, self.config.resolution):
            raise ConfigError("grid_size and grid_resolution are fixed once the grid exists")
        self.config = config
        self._delta = np.array([0.0, config.miss, config.hit], dtype=np.float32)

    def reset(self) -> None:
        self.logodds.fill(0.0)
        self.origin = None

    def update(self, center: Tuple[float, float], hits: np.ndarray,
               free_polygon: Union[None, np.ndarray, List[Optional[np.ndarray]]],
               accumulate: bool = True) -> None:
        """center: the vehicle (x, y); hits: [N,2] contacts; free_polygon: [K,2] or None, or a list of them (the
        road seen by several cameras at once); all in the grid frame. accumulate=False rebuilds the grid from
        this frame alone."""
        if not accumulate:
            self.reset()
        self.accumulating = accumulate
        decayed = self._recenter(center, np.float32(self.config.decay))
        res, ox, oy = self.config.resolution, self.origin[0], self.origin[1]
        labels = self._labels
        labels.fill(0)
        polygons = free_polygon if isinstance(free_polygon, list) else [free_polygon]
        for polygon in polygons:
            if polygon is None or len(polygon) < 3:
                continue
            import cv2

            cells = (np.asarray(polygon, dtype=np.float64) - (ox, oy)) / res  # cell units, centres at +0.5
            poly = np.round(cells * (1 << _SHIFT) - (1 << (_SHIFT - 1)))
            if np.isfinite(poly).all() and np.abs(poly).max() < 2 ** 30:
                cv2.fillPoly(labels, [poly.astype(np.int32)], 1, lineType=cv2.LINE_8, shift=_SHIFT)
        if len(hits):
            col = np.floor((hits[:, 0] - ox) / res).astype(np.int64)
            row = np.floor((hits[:, 1] - oy) / res).astype(np.int64)
            inside = (col >= 0) & (col < self.cells) & (row >= 0) & (row < self.cells)
            labels[row[inside], col[inside]] = 2
        if accumulate:
            import cv2

            if not decayed:  # decay shrinks every value: no clamp needed outside the ROI
                self.logodds *= np.float32(self.config.decay)
            x, y, w, h = cv2.boundingRect(labels)  # the cells this frame touched
            roi = self.logodds[y:y + h, x:x + w]
            roi += self._delta[labels[y:y + h, x:x + w]]
            np.clip(roi, -LOGODDS_LIMIT, LOGODDS_LIMIT, out=roi)
        else:
            np.take(self._delta, labels, out=self.logodds)

    def _recenter(self, center: Tuple[float, float], decay: np.float32) -> bool:
        """Scroll by whole cells so that `center` is in the middle; cells that enter are unknown. A scroll
        copies every cell anyway, so it applies `decay` on the way (returns True when it did)."""
        res, half = self.config.resolution, self.cells // 2
        want = (math.floor(center[0] / res) - half, math.floor(center[1] / res) - half)  # in cells
        if self.origin is None:
            self.origin = (want[0] * res, want[1] * res)
            return False
        have = (round(self.origin[0] / res), round(self.origin[1] / res))
        dx, dy = want[0] - have[0], want[1] - have[1]
        if dx == 0 and dy == 0:
            return False
        old = self.logodds
        new = np.zeros_like(old)
        n = self.cells
        if abs(dx) < n and abs(dy) < n:
            np.multiply(old[max(0, dy):n - max(0, -dy), max(0, dx):n - max(0, -dx)], decay,
                        out=new[max(0, -dy):n - max(0, dy), max(0, -dx):n - max(0, dx)])
        self.logodds = new
        self.origin = (want[0] * res, want[1] * res)
        return True

    def occupancy(self) -> np.ndarray:
        """int8 [cells, cells], row-major from the origin corner: 100 occupied, 0 free, -1 unknown."""
        if self.accumulating:
            occupied, free = self.logodds >= self.config.occupied, self.logodds <= self.config.free
        else:
            occupied, free = self._labels == 2, self._labels == 1
        # UNKNOWN + 1 where free, + (OCCUPIED - UNKNOWN) where occupied (free < occupied: never both)
        out = occupied.view(np.int8) * np.int8(OCCUPIED - UNKNOWN)
        out += free.view(np.int8)
        out += np.int8(UNKNOWN)
        return out

    def cell_of(self, x: float, y: float) -> Tuple[int, int]:
        """(row, col) of the cell holding grid-frame point (x, y)."""
        res = self.config.resolution
        return int(math.floor((y - self.origin[1]) / res)), int(math.floor((x - self.origin[0]) / res))


def to_frame(points: np.ndarray, x: float, y: float, yaw: float) -> np.ndarray:
    """[N,2] base_frame points -> the frame where the vehicle is at (x, y) heading yaw (e.g. odometry)."""
    c, s = math.cos(yaw), math.sin(yaw)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.column_stack([c * points[:, 0] - s * points[:, 1] + x, s * points[:, 0] + c * points[:, 1] + y])
