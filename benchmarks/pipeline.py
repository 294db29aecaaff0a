"""Frames per second of the whole frame pipeline (preprocess -> model -> scores -> postprocess).

Random weights: speed does not depend on them. Prints one table.

    python benchmarks/pipeline.py [--presets tiny vits14] [--height 518 --width 1036] [--frames 10]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from hypood_ros.model import build_segmentor
from hypood_ros.pipeline import FramePipeline, PipelineConfig
from hypood_ros.runtimes.torch_backend import TorchBackend


def measure(preset: str, hw, camera, frames: int, warmup: int, device: str, score: str):
    torch.manual_seed(0)
    backend = TorchBackend(build_segmentor(preset), input_hw=hw, device=device)
    pipeline = FramePipeline(backend, PipelineConfig(score=score, min_area=50))
    image = np.random.default_rng(0).integers(0, 256, (*camera, 3), dtype=np.uint8)
    for _ in range(warmup):
        pipeline.process(image)
    times = []
    for _ in range(frames):
        start = time.perf_counter()
        pipeline.process(image)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "vits14"])
    parser.add_argument("--height", type=int, default=518)
    parser.add_argument("--width", type=int, default=1036)
    parser.add_argument("--camera", type=int, nargs=2, default=[1080, 1920], metavar=("H", "W"))
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--score", default="hyperspherical_llr")
    args = parser.parse_args()
    from hypood_ros.memory import keep_freed_memory

    keep_freed_memory()  # as the node does; HYPOOD_KEEP_FREED_MEMORY=0 measures glibc's defaults

    print(f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}")
    print(f"input {args.height}x{args.width}, camera {args.camera[0]}x{args.camera[1]}, score {args.score}, "
          f"{args.frames} timed frames after {args.warmup} warm-up")
    print("| preset | median ms/frame | max ms/frame | frames/s |")
    print("|---|---:|---:|---:|")
    for preset in args.presets:
        median, worst = measure(preset, (args.height, args.width), tuple(args.camera), args.frames, args.warmup,
                                args.device, args.score)
        print(f"| {preset} | {median * 1e3:.1f} | {worst * 1e3:.1f} | {1.0 / median:.2f} |")


if __name__ == "__main__":
    main()
