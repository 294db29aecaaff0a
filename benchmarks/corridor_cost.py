"""Cost of the corridor region of interest per camera frame (CPU, no ROS).

For each resolution: the pose changes every frame (a TF pose that moves by a few milliradians), so every
call computes the mask; then the same pose again, so every call is answered from the cache. The first call
of a camera (undistortion of its sample pixels, once per camera) is reported on its own. Prints one table:
medians per call of the wall clock (time.perf_counter) and of the process's CPU time (time.process_time,
all its threads; less sensitive to other processes sharing the cores).

    python benchmarks/corridor_cost.py [--calls 300] [--distortion plumb_bob]
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from hypood_ros.geometry import CameraModel, CameraPose, corridor_mask

SIZES = [(480, 640), (720, 1280), (1080, 1920)]
CORRIDOR = dict(half_width=2.0, max_range=40.0, height=2.0, min_range=5.0)


def camera(h: int, w: int, distortion: str) -> CameraModel:
    f = 1200.0 * w / 1280
    coeffs = (-0.28, 0.09, 0.0008, -0.0006, 0.0) if distortion == "plumb_bob" else ()
    return CameraModel(w, h, f, f, w / 2, h / 2, "plumb_bob" if coeffs else "", coeffs)


def call_times(fn, calls: int):
    """Wall and CPU milliseconds of each call `fn(i)`, i = 0 .. calls-1 (also used by roi_cost.py)."""
    wall, cpu = [], []
    for i in range(calls):
        c0, t0 = time.process_time(), time.perf_counter()
        fn(i)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1e3 * np.asarray(wall), 1e3 * np.asarray(cpu)


def timed(fn, calls: int):
    """Median wall and CPU milliseconds per call."""
    wall, cpu = call_times(fn, calls)
    return float(np.median(wall)), float(np.median(cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--distortion", choices=["none", "plumb_bob"], default="none")
    args = parser.parse_args()
    poses = [CameraPose.from_parameters(1.5, roll=0.002 * np.sin(i), pitch=0.05 + 0.003 * np.sin(0.7 * i),
                                        yaw=0.004 * np.cos(0.3 * i), x=1.2)
             for i in range(args.calls)]
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, camera {args.distortion}, "
          f"corridor {CORRIDOR}, medians of {args.calls} calls")
    print("| resolution | first call of a camera ms | new pose ms (wall / CPU) | cached us (wall / CPU) |")
    print("|---|---|---|---|")
    for h, w in SIZES:
        cam = camera(h, w, args.distortion)
        t0 = time.perf_counter()
        corridor_mask(cam, poses[0], **CORRIDOR)
        first = 1e3 * (time.perf_counter() - t0)
        new = timed(lambda i: corridor_mask(cam, poses[i], **CORRIDOR), args.calls)
        same = CameraPose(poses[-1].rotation.copy(), poses[-1].translation.copy())  # equal values, new object
        cached = timed(lambda i: corridor_mask(cam, same, **CORRIDOR), args.calls)
        print(f"| {w}x{h} | {first:.1f} | {new[0]:.3f} / {new[1]:.3f} | {cached[0] * 1e3:.1f} / "
              f"{cached[1] * 1e3:.1f} |")


if __name__ == "__main__":
    main()
