"""Eager PyTorch, ONNX Runtime and AOTInductor (and TensorRT where engines are given) on the same model and
input: build time, file size, latency percentiles and the speed-up over eager PyTorch. One table.

    python benchmarks/backends.py [--presets tiny vits14] [--height 518 --width 1036] [--batches 1 4]
                                  [--runs 10] [--devices cpu cuda] [--engine-dir DIR]

Random weights (speed does not depend on them). The ONNX files and AOTInductor packages are built on the fly
for each preset and batch size (fixed batch, like the ONNX export). On CPU the timed step is `Backend.run`
alone (fp32). On CUDA (rows only when a GPU is present) the step is `Backend.run` in fp16 followed by the
fused score kernel on its outputs, with CUDA graphs off and on where the backend offers them; TensorRT is
included when `--engine-dir` holds `PRESET_bBATCH.engine` files built for this GPU.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import torch

from hypood_ros.errors import BackendError
from hypood_ros.kernels import fused_scores
from hypood_ros.model import build_segmentor, save_checkpoint
from hypood_ros.runtimes import load_backend
from hypood_ros.runtimes.aoti_build import build_aoti
from hypood_ros.runtimes.export import export_onnx
from hypood_ros.runtimes.torch_backend import TorchBackend

HEADER = ("| preset | batch | device | backend | build s | file MB | p50 ms | p90 ms | frames/s | vs eager |\n"
          "|---|---:|---|---|---:|---:|---:|---:|---:|---:|")


def timed(step: Callable[[], None], cuda: bool, runs: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return np.array(times) * 1e3


class Table:
    """Prints rows as they are measured; the first row of a (preset, batch, device) group is the baseline."""

    def __init__(self) -> None:
        self.baseline = {}

    def row(self, preset: str, batch: int, device: str, name: str, ms: Optional[np.ndarray] = None,
            build_s: Optional[float] = None, path: Optional[Path] = None, note: str = "") -> None:
        build = f"{build_s:.1f}" if build_s is not None else ""
        size = f"{path.stat().st_size / 1e6:.1f}" if path is not None else ""
        if ms is None:
            print(f"| {preset} | {batch} | {device} | {name} | {build} | {size} | {note} | | | |", flush=True)
            return
        p50, p90 = np.percentile(ms, [50, 90])
        base = self.baseline.setdefault((preset, batch, device), p50)
        print(f"| {preset} | {batch} | {device} | {name} | {build} | {size} | {p50:.1f} | {p90:.1f} | "
              f"{batch * 1e3 / p50:.2f} | {base / p50:.2f}x |", flush=True)


def run_only(backend, x) -> Callable[[], None]:
    return lambda: backend.run(x)


def run_and_score(backend, x) -> Callable[[], None]:
    def step() -> None:
        out = backend.run(x)
        fused_scores(out["embedding"], out["seg_logits"], backend.head, uem_logits=out["uem_logits"])

    return step


def measure(table: Table, key, name: str, make: Callable[[], object], step_of, x, args, build_s=None, path=None):
    preset, batch, device = key
    try:
        backend = make()
    except BackendError as exc:  # e.g. no CUDA execution provider in this onnxruntime
        table.row(preset, batch, device, name, build_s=build_s, path=path, note=f"not available: {exc}")
        return
    try:
        ms = timed(step_of(backend, x), device == "cuda", args.runs, args.warmup)
    finally:
        backend.close()
    table.row(preset, batch, device, name, ms, build_s, path)


def built(build: Callable[[], object]):
    start = time.perf_counter()
    build()
    return time.perf_counter() - start


def cpu_group(table: Table, preset, model, checkpoint: Path, batch: int, hw, tmp: Path, args) -> None:
    key = (preset, batch, "cpu")
    x = torch.randn(batch, 3, *hw)
    measure(table, key, "torch (eager)", lambda: TorchBackend(model, input_hw=hw, batch_size=batch), run_only, x, args)
    onnx = tmp / f"{preset}_b{batch}.onnx"
    seconds = built(lambda: export_onnx(model, onnx, *hw, batch=batch, verify=False))
    measure(table, key, "onnxruntime", lambda: load_backend(onnx), run_only, x, args, seconds, onnx)
    package = tmp / f"{preset}_b{batch}_cpu.pt2"
    meta = build_aoti(checkpoint, package, *hw, batch=batch, log=lambda line: None)
    measure(table, key, "aoti", lambda: load_backend(package), run_only, x, args, meta.build_seconds, package)


def cuda_group(table: Table, preset, model, checkpoint: Path, batch: int, hw, tmp: Path, args) -> None:
    key = (preset, batch, "cuda")
    x = torch.randn(batch, 3, *hw, device="cuda")
    for graphs in (False, True):
        measure(table, key, f"torch fp16{' + CUDA graphs' if graphs else ''}",
                lambda: TorchBackend(model, input_hw=hw, device="cuda", fp16=True, batch_size=batch,
                                     cuda_graphs=graphs), run_and_score, x, args)
    onnx = tmp / f"{preset}_b{batch}_fp16.onnx"
    seconds = built(lambda: export_onnx(model, onnx, *hw, batch=batch, fp16=True, verify=False))
    measure(table, key, "onnxruntime fp16 (CUDA EP)", lambda: load_backend(onnx, device="cuda"), run_and_score, x,
            args, seconds, onnx)
    package = tmp / f"{preset}_b{batch}_cuda_fp16.pt2"
    meta = build_aoti(checkpoint, package, *hw, device="cuda", fp16=True, batch=batch, log=lambda line: None)
    for graphs in (False, True):
        measure(table, key, f"aoti fp16{' + CUDA graphs' if graphs else ''}",
                lambda: load_backend(package, device="cuda", cuda_graphs=graphs), run_and_score, x, args,
                meta.build_seconds, package)
    engine = args.engine_dir / f"{preset}_b{batch}.engine" if args.engine_dir else None
    if engine is not None and engine.is_file():
        measure(table, key, "tensorrt", lambda: load_backend(engine, device="cuda"), run_and_score, x, args,
                None, engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "vits14"])
    parser.add_argument("--height", type=int, default=518)
    parser.add_argument("--width", type=int, default=1036)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"], choices=["cpu", "cuda"],
                        help="cuda rows are skipped (with a note) when no GPU is present")
    parser.add_argument("--engine-dir", type=Path, default=None)
    args = parser.parse_args()
    hw = (args.height, args.width)
    devices: List[str] = list(args.devices)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), input Bx3x{hw[0]}x{hw[1]}, {args.runs} runs after {args.warmup} "
          f"warm-up; 'vs eager' = eager p50 / p50 in the same preset, batch and device")
    if "cuda" in devices and not torch.cuda.is_available():
        print("cuda: no CUDA device here, GPU rows skipped")
        devices.remove("cuda")
    elif "cuda" in devices:
        print(f"cuda: {torch.cuda.get_device_name()}; timed step = fp16 run + fused score kernel")
    print(HEADER, flush=True)
    table = Table()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for preset in args.presets:
            torch.manual_seed(0)
            model = build_segmentor(preset).eval()
            checkpoint = save_checkpoint(model, tmp / f"{preset}.pt")
            for batch in args.batches:
                for device in devices:
                    group = cpu_group if device == "cpu" else cuda_group
                    group(table, preset, model.float().cpu(), checkpoint, batch, hw, tmp, args)


if __name__ == "__main__":
    main()
