"""Each available backend on the same model and input: frames/s and latency percentiles of `run`.

    python benchmarks/backends.py [--presets tiny vits14] [--height 518 --width 1036] [--runs 10] [--device cpu]

Random weights (speed does not depend on them); the ONNX file is exported on the fly. TensorRT is included
when `--engine-dir` holds engines built for these presets (named PRESET.engine). Prints one table.
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hypood_ros.errors import BackendError
from hypood_ros.model import build_segmentor
from hypood_ros.runtimes import load_backend
from hypood_ros.runtimes.export import export_onnx
from hypood_ros.runtimes.torch_backend import TorchBackend


def timed(backend, x, runs, warmup):
    for _ in range(warmup):
        backend.run(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = backend.run(x)
        if backend.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        del out
    return np.array(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "vits14"])
    parser.add_argument("--height", type=int, default=518)
    parser.add_argument("--width", type=int, default=1036)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--engine-dir", type=Path, default=None)
    args = parser.parse_args()
    hw = (args.height, args.width)
    print(f"machine: {platform.machine()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"device {args.device}, input 1x3x{hw[0]}x{hw[1]}, {args.runs} runs after {args.warmup} warm-up")
    print("| preset | backend | frames/s | p50 ms | p90 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            torch.manual_seed(0)
            model = build_segmentor(preset).eval()
            onnx_path = export_onnx(model, Path(tmp) / f"{preset}.onnx", *hw, verify=False).path
            backends = [("torch", TorchBackend(model, input_hw=hw, device=args.device))]
            candidates = [("onnxruntime", onnx_path)]
            engine = args.engine_dir / f"{preset}.engine" if args.engine_dir else None
            if engine is not None and engine.is_file():
                candidates.append(("tensorrt", engine))
            for name, path in candidates:
                try:
                    backends.append((name, load_backend(path, device=args.device)))
                except BackendError as exc:  # e.g. no CUDA execution provider in this onnxruntime
                    print(f"| {preset} | {name} | not available: {exc} | | | |")
            x = torch.randn(1, 3, *hw, device=args.device)
            for name, backend in backends:
                ms = timed(backend, x, args.runs, args.warmup)
                p50, p90, p99 = np.percentile(ms, [50, 90, 99])
                print(f"| {preset} | {name} | {1e3 / p50:.2f} | {p50:.1f} | {p90:.1f} | {p99:.1f} |")
                backend.close()


if __name__ == "__main__":
    main()
