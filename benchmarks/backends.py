"""Eager PyTorch, ONNX Runtime and AOTInductor (and TensorRT where engines are given) on the same model and
input: build time, file size, latency percentiles and the speed-up over eager PyTorch. One table.

    python benchmarks/backends.py [--presets tiny vits14] [--height 518 --width 1036] [--batches 1 4]
                                  [--runs 10] [--devices cpu cuda] [--engine-dir DIR]

Random weights (speed does not depend on them). The ONNX files and AOTInductor packages are built on the fly
for each preset and batch size (fixed batch, like the ONNX export). On CPU the timed step is `Backend.run`
alone (fp32). On CUDA (rows only when a GPU is present) the step is `Backend.run` in fp16 followed by the
fused score kernel on its outputs, with CUDA graphs off and on where the backend offers them; TensorRT is
included when `--engine-dir` holds `PRESET_bBATCH.engine` files built for this GPU. The backends of one
preset, batch and device take turns run by run, so load from other work falls on all of them alike.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import torch

from hypood_ros.errors import BackendError
from hypood_ros.kernels import FusedArgs, fused_scores
from hypood_ros.model import build_segmentor, save_checkpoint
from hypood_ros.runtimes import load_backend
from hypood_ros.runtimes.aoti_build import build_aoti
from hypood_ros.runtimes.export import export_onnx
from hypood_ros.runtimes.torch_backend import TorchBackend

HEADER = ("| preset | batch | device | backend | build s | file MB | min ms | p50 ms | p90 ms | CPU ms p50 | frames/s "
          "| vs eager |\n|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def interleaved(steps: List[Callable[[], None]], cuda: bool, runs: int, warmup: int):
    """(wall ms, process CPU ms) per run of each step, the steps taking turns run by run, so that load from
    other work on the machine falls on all of them alike. CPU time (all threads of this process) does not
    count time spent waiting for a core, so it is the steadier figure on a shared machine."""
    for step in steps:
        for _ in range(warmup):
            step()
    times: List[List[float]] = [[] for _ in steps]
    cpu: List[List[float]] = [[] for _ in steps]
    for _ in range(runs):
        for step, out, out_cpu in zip(steps, times, cpu):
            if cuda:
                torch.cuda.synchronize()
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            if cuda:
                torch.cuda.synchronize()
            out.append((time.perf_counter() - start) * 1e3)
            out_cpu.append((time.process_time() - start_cpu) * 1e3)
    return [(np.array(t), np.array(c)) for t, c in zip(times, cpu)]


class Table:
    """Prints rows as they are measured; the first row of a (preset, batch, device) group is the baseline."""

    def __init__(self) -> None:
        self.baseline = {}

    def row(self, preset: str, batch: int, device: str, name: str, ms: Optional[np.ndarray] = None,
            build_s: Optional[float] = None, path: Optional[Path] = None, note: str = "",
            cpu_ms: Optional[np.ndarray] = None) -> None:
        build = f"{build_s:.1f}" if build_s is not None else ""
        size = f"{path.stat().st_size / 1e6:.1f}" if path is not None else ""
        if ms is None:
            print(f"| {preset} | {batch} | {device} | {name} | {build} | {size} | {note} | | | | | |", flush=True)
            return
        p50, p90 = np.percentile(ms, [50, 90])
        base = self.baseline.setdefault((preset, batch, device), p50)
        print(f"| {preset} | {batch} | {device} | {name} | {build} | {size} | {ms.min():.1f} | {p50:.1f} | {p90:.1f} | "
              f"{np.median(cpu_ms):.1f} | "
              f"{batch * 1e3 / p50:.2f} | {base / p50:.2f}x |", flush=True)


def run_only(backend, x) -> Callable[[], None]:
    return lambda: backend.run(x)


def run_and_score(backend, x) -> Callable[[], None]:
    def step() -> None:
        out = backend.run(x)
        fused_scores(FusedArgs(out["embedding"], out["seg_logits"], backend.head, uem_logits=out["uem_logits"]))

    return step


class Group:
    """The backends of one (preset, batch, device), timed together (see `interleaved`)."""

    def __init__(self, table: Table, key, x, step_of, args) -> None:
        self.table, self.key, self.x, self.step_of, self.args = table, key, x, step_of, args
        self.entries = []

    def add(self, name: str, make: Callable[[], object], build_s=None, path=None) -> None:
        try:
            backend = make()
        except BackendError as exc:  # e.g. no CUDA execution provider in this onnxruntime
            self.table.row(*self.key, name, build_s=build_s, path=path, note=f"not available: {exc}")
            return
        self.entries.append((name, backend, build_s, path))

    def run(self) -> None:
        steps = [self.step_of(backend, self.x) for _, backend, _, _ in self.entries]
        results = interleaved(steps, self.key[2] == "cuda", self.args.runs, self.args.warmup)
        for (name, backend, build_s, path), (ms, cpu_ms) in zip(self.entries, results):
            self.table.row(*self.key, name, ms, build_s, path, cpu_ms=cpu_ms)
            backend.close()


def built(build: Callable[[], object]):
    start = time.perf_counter()
    build()
    return time.perf_counter() - start


def cpu_group(table: Table, preset, model, checkpoint: Path, batch: int, hw, tmp: Path, args) -> None:
    group = Group(table, (preset, batch, "cpu"), torch.randn(batch, 3, *hw), run_only, args)
    group.add("torch (eager)", lambda: TorchBackend(model, input_hw=hw, batch_size=batch))
    onnx = tmp / f"{preset}_b{batch}.onnx"
    seconds = built(lambda: export_onnx(model, onnx, *hw, batch=batch, verify=False))
    group.add("onnxruntime", lambda: load_backend(onnx), seconds, onnx)
    package = tmp / f"{preset}_b{batch}_cpu.pt2"
    meta = build_aoti(checkpoint, package, *hw, batch=batch, log=lambda line: None)
    group.add("aoti", lambda: load_backend(package), meta.build_seconds, package)
    group.run()


def cuda_group(table: Table, preset, model, checkpoint: Path, batch: int, hw, tmp: Path, args) -> None:
    group = Group(table, (preset, batch, "cuda"), torch.randn(batch, 3, *hw, device="cuda"), run_and_score, args)
    onnx = tmp / f"{preset}_b{batch}_fp16.onnx"
    seconds = built(lambda: export_onnx(model, onnx, *hw, batch=batch, fp16=True, verify=False))
    package = tmp / f"{preset}_b{batch}_cuda_fp16.pt2"
    meta = build_aoti(checkpoint, package, *hw, device="cuda", fp16=True, batch=batch, log=lambda line: None)
    for graphs in (False, True):
        group.add(f"torch fp16{' + CUDA graphs' if graphs else ''}",
                  lambda: TorchBackend(copy.deepcopy(model), input_hw=hw, device="cuda", fp16=True, batch_size=batch,
                                       cuda_graphs=graphs))
    group.add("onnxruntime fp16 (CUDA EP)", lambda: load_backend(onnx, device="cuda"), seconds, onnx)
    for graphs in (False, True):
        group.add(f"aoti fp16{' + CUDA graphs' if graphs else ''}",
                  lambda: load_backend(package, device="cuda", cuda_graphs=graphs), meta.build_seconds, package)
    engine = args.engine_dir / f"{preset}_b{batch}.engine" if args.engine_dir else None
    if engine is not None and engine.is_file():
        group.add("tensorrt", lambda: load_backend(engine, device="cuda"), None, engine)
    group.run()


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
    from hypood_ros.memory import keep_freed_memory

    keep_freed_memory()  # as the node does; HYPOOD_KEEP_FREED_MEMORY=0 measures glibc's defaults
    hw = (args.height, args.width)
    devices: List[str] = list(args.devices)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), input Bx3x{hw[0]}x{hw[1]}, {args.runs} runs after {args.warmup} "
          f"warm-up; 'vs eager' = eager p50 / p50 in the same preset, batch and device; frames/s from p50; "
          f"CPU ms = process CPU time (all threads)")
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
                    group(table, preset, model, checkpoint, batch, hw, tmp, args)


if __name__ == "__main__":
    main()
