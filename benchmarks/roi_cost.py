"""Cost per frame of the obstacle mask's region of interest (hypood_ros.roi) on the CPU.

    python benchmarks/roi_cost.py [--repeat 200]

Labels: a generated street's train ids (hypood_ros.synthetic) resized to each resolution, so the road has
the shape and clutter the region meets in the demo. Prints the median and 90th percentile over `--repeat`
calls of wall time (perf_counter) and CPU time (process_time, all threads) for the road region at the
default margin (coarse grid), the same on the full grid, the corridor from geometry for a pose that
changes every call, and the local contrast the mask can threshold instead of the score (hypood_ros.contrast;
a smooth random score map, inside the road region). Time it on a quiet machine: nothing else may run beside it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corridor_cost import call_times  # noqa: E402  (this folder is on the path when run as a script)

from hypood_ros.contrast import contrast_score  # noqa: E402
from hypood_ros.defaults import default  # noqa: E402
from hypood_ros.geometry import CameraModel, CameraPose, corridor_mask  # noqa: E402
from hypood_ros.roi import road_region, road_step  # noqa: E402
from hypood_ros.synthetic import writers  # noqa: E402

SIZES = ((480, 640), (720, 1280), (1080, 1920))
CONTRASTS = (0.1, 0.15, 0.2)


def timed(fn, repeat):
    """Median and 90th percentile of wall and of CPU milliseconds per call."""
    wall, cpu = call_times(fn, repeat)
    return np.percentile(wall, [50, 90]), np.percentile(cpu, [50, 90])


def main(argv=None) -> int:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args(argv)
    from hypood_ros.memory import keep_freed_memory

    keep_freed_memory()  # as the node does; HYPOOD_KEEP_FREED_MEMORY=0 measures glibc's defaults
    labels = writers.scene(7).label
    margin = default("roi_margin")
    print("| resolution | step | road region wall ms p50 / p90 | CPU ms p50 / p90 |")
    print("|---|---:|---:|---:|")
    rows, contrast_rows = [], []
    rng = np.random.default_rng(0)
    for height, width in SIZES:
        big = cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
        for step in (None, 1):
            wall, cpu = timed(lambda i: road_region(big, margin, step=step), args.repeat)
            shown = road_step(height) if step is None else step
            print(f"| {width}x{height} | {shown} | {wall[0]:.2f} / {wall[1]:.2f} | {cpu[0]:.2f} / {cpu[1]:.2f} |")
        fx = 0.85 * width
        camera = CameraModel.from_camera_info(width, height, [fx, 0, width / 2, 0, fx, height * 0.42, 0, 0, 1],
                                              [0.0] * 5, "plumb_bob")
        corridor_mask(camera, CameraPose.from_parameters(1.5), 1.5, 40.0, 1.0, 2.0)  # first call per camera
        wall, cpu = timed(lambda i: corridor_mask(camera, CameraPose.from_parameters(1.5, pitch=0.001 * (i % 97)),
                                                  1.5, 40.0, 1.0, 2.0), args.repeat)
        rows.append(f"| {width}x{height} | corridor, new pose each call | {wall[0]:.2f} / {wall[1]:.2f} | "
                    f"{cpu[0]:.2f} / {cpu[1]:.2f} |")
        region = road_region(big, margin)
        score = cv2.GaussianBlur(rng.normal(size=(height, width)).astype(np.float32), (0, 0), height / 60)
        for sigma in CONTRASTS:
            wall, cpu = timed(lambda i: contrast_score(score, region, sigma), args.repeat)
            contrast_rows.append(f"| {width}x{height} | {sigma} | {wall[0]:.2f} / {wall[1]:.2f} | "
                                 f"{cpu[0]:.2f} / {cpu[1]:.2f} |")
    print("\n| resolution | corridor | wall ms p50 / p90 | CPU ms p50 / p90 |\n|---|---|---:|---:|")
    print("\n".join(rows))
    print("\n| resolution | local_contrast | wall ms p50 / p90 | CPU ms p50 / p90 |\n|---|---:|---:|---:|")
    print("\n".join(contrast_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
