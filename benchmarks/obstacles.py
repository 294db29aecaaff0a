"""Cost of the obstacle geometry and the grid update per camera frame (CPU, no ROS).

Masks are boxes on a flat road rendered through each lens model (tests/road_scene.py), optionally with
small noise blobs; the score map is random. Per frame: `find_obstacles` (components, ground contacts,
undistortion, ground intersection, statistics, free-space polygon) and the grid update in the odometry
frame while the vehicle moves 0.5 m per frame (scrolling, decay, evidence, occupancy). Prints one table:
wall-clock medians (and p90) and the median CPU time of the process per frame (all threads).

    python benchmarks/obstacles.py [--frames 200] [--size 720 1280] [--cv-threads 1]
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from road_scene import POSE, Box, render  # noqa: E402

from hypood_ros.defaults import default  # noqa: E402
from hypood_ros.geometry import CameraModel, CameraPose, GridConfig, LocalGrid, find_obstacles, to_frame  # noqa: E402

BOXES = [Box(5.0, -1.0), Box(10.0, 1.5), Box(20.0, -2.5), Box(30.0, 3.0), Box(38.0, -0.5)]


def cameras(h: int, w: int):
    f = 1200.0 * w / 1280
    return {
        "pinhole": CameraModel(w, h, f, f, w / 2, h / 2),
        "plumb_bob": CameraModel(w, h, f, f, w / 2, h / 2, "plumb_bob", (-0.28, 0.09, 0.0008, -0.0006, 0.0)),
        "equidistant": CameraModel(w, h, f, f, w / 2, h / 2, "equidistant", (0.04, -0.012, 0.003, -0.0005)),
    }


def masks(camera: CameraModel, pose: CameraPose):
    boxes = (render(camera, pose, BOXES) > 0).astype(np.uint8) * 255
    noisy = boxes.copy()
    rng = np.random.default_rng(0)
    for _ in range(40):
        x, y = int(rng.integers(0, camera.width - 20)), int(rng.integers(0, camera.height - 20))
        s = int(rng.integers(5, 20))
        noisy[y:y + s, x:x + s] = 255
    return {"empty": np.zeros_like(boxes), "5 boxes": boxes, "5 boxes + 40 blobs": noisy}


def measure(camera, pose, mask, score, frames: int):
    """Wall time (what the machine gave) and CPU time of this process (all its threads; insensitive to
    other processes competing for the cores), in ms per frame."""
    grid = LocalGrid(GridConfig())
    max_range = default("max_range")
    geo, upd, cpu = [], [], []
    for i in range(frames + 5):
        c0, t0 = time.process_time(), time.perf_counter()
        found = find_obstacles(mask, camera, pose, max_range, score)
        t1 = time.perf_counter()
        x, y, yaw = 0.5 * i, 0.0, 0.0
        poly = None if found.free_polygon is None else to_frame(found.free_polygon, x, y, yaw)
        grid.update((x, y), to_frame(found.points[:, :2], x, y, yaw), poly)
        grid.occupancy()
        t2, c2 = time.perf_counter(), time.process_time()
        if i >= 5:
            geo.append(t1 - t0)
            upd.append(t2 - t1)
            cpu.append(c2 - c0)
    geo, upd, cpu = np.array(geo) * 1e3, np.array(upd) * 1e3, np.array(cpu) * 1e3
    total = geo + upd
    return len(found), np.median(geo), np.median(upd), np.median(total), np.percentile(total, 90), np.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, nargs=2, default=[720, 1280], metavar=("H", "W"))
    parser.add_argument("--cv-threads", type=int, default=None, help="OpenCV threads (default: OpenCV's choice)")
    args = parser.parse_args()
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)
    h, w = args.size
    pose = CameraPose.from_parameters(**POSE)
    score = np.random.default_rng(1).random((h, w), dtype=np.float32)
    cells = int(round(default("grid_size") / default("grid_resolution")))
    print(f"machine: {platform.machine()} {platform.processor() or ''}, numpy {np.__version__}, "
          f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)")
    print(f"frame {w}x{h}, grid {cells}x{cells} cells of {default('grid_resolution')} m, {args.frames} timed frames")
    print("| lens | mask | obstacles | geometry ms | grid ms | total ms | total ms p90 | total CPU ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for lens, camera in cameras(h, w).items():
        for name, mask in masks(camera, pose).items():
            n, geo, upd, total, p90, cpu = measure(camera, pose, mask, score, args.frames)
            print(f"| {lens} | {name} | {n} | {geo:.2f} | {upd:.2f} | {total:.2f} | {p90:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
