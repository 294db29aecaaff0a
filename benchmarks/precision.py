"""Reduced precision on the CPU: speed of fp32 / bf16 / int8 per backend, and what each keeps of fp32.

    python benchmarks/precision.py speed [--presets demo vits14] [--runs 5] [--calib-images DIR]
    python benchmarks/precision.py retention --data WORK [--calib-images DIR] [--model models/demo/model.pt]

`speed`: per preset (`demo`: the shipped model at its recorded input, 280x560; `vits14`: ViT-S/14 with random
weights at 518x1036) and per backend and precision (torch fp32, torch bf16 where the CPU has bf16
instructions, ONNX Runtime fp32, int8 dynamic, int8 static), seconds per frame of `Backend.run` as process
CPU time (all threads) and wall time, the backends taking turns run by run. Each row's rate (the network's
FLOPs, counted once in fp32 by torch's FLOP counter, per CPU second) is set against this machine's measured
peak for that precision, per CPU second too: a large matmul in fp32 and bf16 (torch) and in int8 (ONNX
Runtime's MatMulInteger, u8 x s8 -> s32, the kernel its int8 layers use; torch._int_mm beside it).

`retention`: the shipped demo model in each precision against torch fp32 on the demo's held-out generated
scenes (WORK as `make demo-model` lays it out: cityscapes/ with the val split, eval-family/): mIoU on the val
scenes, AP of the shipped score (models/demo/params.yaml) on the evaluation family (road: SMIYC obstacle
layout; whole: anomaly layout), the share of the node's mask pixels that change against fp32's mask
(pixels that differ, over fp32's mask pixels; the shipped threshold, region, opening), the share of
in-distribution pixels inside the region flagged at the shipped (fp32) threshold (its target: the card's
3%), each precision's own calibrated threshold (`hypood calibrate`'s rule on the val scenes) and the mask's
change at that threshold.

Static int8 calibrates on --calib-images (in-distribution frames that are none of the measured ones; default:
the speed table uses noise pictures, which time the same). A loaded machine: read the CPU-time columns.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backends import interleaved  # noqa: E402  (the timing loop every backend table shares)

from hypood_ros.errors import BackendError  # noqa: E402
from hypood_ros.model import build_segmentor, load_checkpoint, save_checkpoint  # noqa: E402
from hypood_ros.runtimes import load_backend  # noqa: E402
from hypood_ros.runtimes.export import export_onnx  # noqa: E402
from hypood_ros.runtimes.precision import bf16_instructions  # noqa: E402
from hypood_ros.runtimes.quantize import quantize_onnx  # noqa: E402

DEMO = Path(__file__).resolve().parent.parent / "models" / "demo"


# -- peak rates ------------------------------------------------------------------------------------------
def _cpu_rate(step: Callable[[], None], flops: float, runs: int = 5) -> float:
    """FLOP per CPU second (all threads) of `step`, best of `runs` after one warm-up."""
    step()
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        step()
        best = min(best, time.process_time() - start)
    return flops / best


def peak_rates(n: int = 2048) -> Dict[str, float]:
    """This machine's matmul rate per precision, FLOP per CPU second."""
    a32, b32 = torch.randn(n, n), torch.randn(n, n)
    rates = {"fp32": _cpu_rate(lambda: torch.mm(a32, b32), 2 * n ** 3)}
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    rates["bf16"] = _cpu_rate(lambda: torch.mm(a16, b16), 2 * n ** 3)
    a8 = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    rates["int8 (torch._int_mm)"] = _cpu_rate(lambda: torch._int_mm(a8, a8), 2 * n ** 3)
    rates["int8"] = _ort_int8_rate(n)
    return rates


def _ort_int8_rate(n: int) -> float:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "mm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
         helper.make_tensor_value_info("b", TensorProto.INT8, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {"a": rng.integers(0, 255, (n, n), dtype=np.uint8), "b": rng.integers(-128, 127, (n, n), dtype=np.int8)}
    return _cpu_rate(lambda: session.run(None, feed), 2 * n ** 3)


def forward_flops(model: torch.nn.Module, hw) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, *hw))
    return float(counter.get_total_flops())


# -- the variants ----------------------------------------------------------------------------------------
def noise_frames(hw, count: int = 4) -> Callable[[], List[np.ndarray]]:
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (hw[0], hw[1], 3), dtype=np.uint8) for _ in range(count)]
    return lambda: iter(pictures)


def image_frames(folder: Path, count: int) -> Callable:
    from hypood_ros.images import read_image

    files = sorted(p for p in folder.rglob("*.png"))[:count]
    if not files:
        raise SystemExit(f"--calib-images {folder}: no .png files")
    return lambda: (read_image(p) for p in files)


def variants(checkpoint: Path, hw, work: Path, calib: Callable, calib_name: str) -> Dict[str, Callable]:
    """(backend, precision) -> a function that loads it; files built once into `work`."""
    onnx = work / "fp32.onnx"
    export_onnx(load_checkpoint(checkpoint), onnx, *hw)
    out = {("torch", "fp32"): lambda: load_backend(checkpoint, input_hw=hw)}
    if bf16_instructions():
        out[("torch", "bf16")] = lambda: load_backend(checkpoint, input_hw=hw, bf16=True)
    out[("onnxruntime", "fp32")] = lambda: load_backend(onnx)
    for mode in ("dynamic", "static"):
        path = work / f"int8-{mode}.onnx"
        quantize_onnx(onnx, path, mode, calib if mode == "static" else None, 32, calib_name, checkpoint)
        out[("onnxruntime", f"int8-{mode}")] = (lambda p=path: load_backend(p))
    return out


# -- speed -----------------------------------------------------------------------------------------------
def speed(args) -> None:
    peaks = peak_rates()
    print("peak matmul rate per CPU second (2048^3): " +
          ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()))
    print("\n| model, input | backend | precision | CPU s/frame p50 | wall s/frame p50 | GFLOP/frame | GFLOP per CPU s "
          "| of peak |\n|---|---|---|---:|---:|---:|---:|---:|")
    for preset in args.presets:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            if preset == "demo":
                checkpoint, hw = DEMO / "model.pt", tuple(load_checkpoint(DEMO / "model.pt").input_size)
                name = f"demo (tiny, trained), {hw[0]}x{hw[1]}"
            else:
                torch.manual_seed(0)
                checkpoint, hw = work / f"{preset}.pt", (args.height, args.width)
                save_checkpoint(build_segmentor(preset).eval(), checkpoint, {"input_size": list(hw)})
                name = f"{preset} (random weights), {hw[0]}x{hw[1]}"
            flops = forward_flops(load_checkpoint(checkpoint).eval(), hw)
            calib = image_frames(Path(args.calib_images), 32) if args.calib_images else noise_frames(hw)
            loaders = variants(checkpoint, hw, work, calib, args.calib_images or "noise pictures")
            backends = {key: load() for key, load in loaders.items()}
            x = torch.randn(1, 3, *hw)
            steps = [lambda b=b: b.run(x) for b in backends.values()]
            results = interleaved(steps, False, args.runs, 1)
            for (backend, precision), (wall, cpu) in zip(backends, results):
                rate = flops / (np.median(cpu) / 1e3)
                peak = peaks["int8" if precision.startswith("int8") else precision]
                print(f"| {name} | {backend} | {precision} | {np.median(cpu) / 1e3:.3f} | {np.median(wall) / 1e3:.3f} "
                      f"| {flops / 1e9:.1f} | {rate / 1e9:.1f} | {rate / peak:.2f} |", flush=True)
            for b in backends.values():
                b.close()
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads; bf16 instructions: {bf16_instructions() or 'none'}; {args.runs} runs")


# -- retention -------------------------------------------------------------------------------------------
class Remembered:
    """A backend whose outputs are kept per input: the evaluation family's pictures are the same in both SMIYC
    layouts and in the mask pass, so each is run through the network once."""

    def __init__(self, backend) -> None:
        self._backend, self._seen = backend, {}

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def run(self, batch: torch.Tensor):
        import hashlib

        key = hashlib.sha1(batch.detach().cpu().contiguous().numpy().tobytes()).digest()
        if key not in self._seen:
            self._seen[key] = {k: v.clone() for k, v in self._backend.run(batch).items()}
        return self._seen[key]


def shipped_params(path: Path) -> Dict[str, object]:
    import yaml

    data = yaml.safe_load(path.read_text())
    return dict(next(iter(data.values()))["ros__parameters"])


def retention(args) -> None:
    from hypood_ros.calibration import threshold_for_fraction
    from hypood_ros.evaluation.datasets import open_dataset
    from hypood_ros.evaluation.evaluate import evaluate
    from hypood_ros.images import read_image
    from hypood_ros.pipeline import FramePipeline, PipelineConfig, mask_score
    from hypood_ros.training.cityscapes import read_label, val_pairs
    from hypood_ros.training.validate import confusion, miou

    params = shipped_params(args.model.parent / "params.yaml")
    # the shipped threshold's target (`make demo-model --target-fpr`), as the model card recorded it
    target = json.loads((args.model.parent / "metrics.json").read_text())["threshold_target_fpr"]
    score, hw = params["score"], (params["input_height"], params["input_width"])
    config = PipelineConfig(**{k: params[k] for k in ("score", "score_resolution", "threshold", "eta", "lam", "delta",
                                                      "roi", "roi_margin", "roi_drop_known", "opening", "min_area")},
                            local_contrast=params.get("local_contrast", 0.0),
                            outputs=frozenset({"labels", "score", "mask", "region"}))
    pairs = val_pairs(args.data / "cityscapes")
    ood = {track: open_dataset(track, args.data / "eval-family") for track in ("smiyc-obstacle", "smiyc-anomaly")}
    ood_images = [s.image for s in ood["smiyc-anomaly"].samples]
    calib = image_frames(Path(args.calib_images), 32) if args.calib_images else None
    if calib is None:
        raise SystemExit("retention needs --calib-images (in-distribution frames for static int8)")
    rows, reference_masks = [], None
    with tempfile.TemporaryDirectory() as tmp:
        loaders = variants(args.model, hw, Path(tmp), calib, args.calib_images)
        for (backend_name, precision), load in loaders.items():
            backend = Remembered(load())
            pipeline = FramePipeline(backend, config)
            matrix, inside = 0, []
            for image, label in pairs:
                result = pipeline.process(read_image(image))
                matrix = matrix + confusion(result.labels.astype("int64"), read_label(label), 19)
                value = mask_score(result.score, result.region, config)  # what the threshold applies to
                inside.append(value if result.region is None else value[result.region])
            region_pixels = sum(s.size for s in inside)
            flagged = sum(int((s > config.threshold).sum()) for s in inside)
            # the precision's own threshold: `hypood calibrate`'s rule on the same raw values inside the region
            own = threshold_for_fraction(inside, region_pixels, target)
            masks = [pipeline.process(read_image(p)).mask > 0 for p in ood_images]
            own_pipeline = FramePipeline(backend, config.replace(threshold=own.threshold))
            own_masks = [own_pipeline.process(read_image(p)).mask > 0 for p in ood_images]  # outputs remembered
            if reference_masks is None:
                reference_masks = masks
            reference = max(sum(int(r.sum()) for r in reference_masks), 1)
            changed = sum(int((m != r).sum()) for m, r in zip(masks, reference_masks)) / reference
            own_changed = sum(int((m != r).sum()) for m, r in zip(own_masks, reference_masks)) / reference
            ap = {track: evaluate(backend, dataset, [score], Path(tmp) / f"{backend_name}-{precision}-{track}",
                                  {"eta": params["eta"], "lam": params["lam"], "delta": params["delta"]},
                                  heatmaps=0, resolution=params["score_resolution"])[score]["AP"]
                  for track, dataset in ood.items()}
            rows.append((backend_name, precision, float(miou(matrix)[0]), ap["smiyc-obstacle"], ap["smiyc-anomaly"],
                         changed, flagged / max(region_pixels, 1), own.threshold, own_changed))
            print(f"  {backend_name} {precision} done", file=sys.stderr, flush=True)
            backend.close()
    base = rows[0]
    print(f"\nshipped score {score}, threshold {config.threshold:.4g} (target {target:.0%} of the region's ID pixels), "
          f"input {hw[0]}x{hw[1]}; {len(pairs)} held-out val scenes, {len(ood_images)} evaluation-family scenes\n")
    print("| backend | precision | mIoU % | Δ | AP road % | Δ | AP whole % | Δ | mask pixels changed | "
          "ID flagged at fp32 threshold | own threshold | mask pixels changed at it |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b, p, m, road, whole, changed, fa, own, own_changed in rows:
        print(f"| {b} | {p} | {100 * m:.1f} | {100 * (m - base[2]):+.1f} | {100 * road:.1f} | "
              f"{100 * (road - base[3]):+.1f} | {100 * whole:.1f} | {100 * (whole - base[4]):+.1f} | {changed:.2%} | "
              f"{fa:.2%} | {own:.4g} | {own_changed:.2%} |")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--presets", nargs="+", default=["demo", "vits14"])
    s.add_argument("--height", type=int, default=518)
    s.add_argument("--width", type=int, default=1036)
    s.add_argument("--runs", type=int, default=5)
    s.add_argument("--calib-images", default=None)
    r = sub.add_parser("retention")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--model", type=Path, default=DEMO / "model.pt")
    r.add_argument("--calib-images", default=None)
    args = parser.parse_args(argv)
    from hypood_ros.memory import keep_freed_memory

    keep_freed_memory()  # as the node does; HYPOOD_KEEP_FREED_MEMORY=0 measures glibc's defaults
    try:
        speed(args) if args.what == "speed" else retention(args)
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
