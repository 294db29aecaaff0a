"""How far `score_resolution = network` lies from `image` (the authors' order), per score, on generated frames.

    python benchmarks/score_orders.py [--preset tiny] [--frames 3] [--size 720 1280] [--model CKPT]

Runs the model (a randomly initialised preset with seed 0, or --model) at its 518x1036 input on generated
street-like frames (road, sky, a building block, a box on the road, per-pixel noise) and prints, per score,
the largest and the 99th-percentile absolute difference between the two orders at camera size, the score's
own spread (99th - 1st percentile at `image`) for scale, and the share of pixels whose class id differs.
A random model says how large the effect of the order can be on real network outputs; a trained model
(--model) says how large it is for that model.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch


def street_frame(seed: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[: height // 2] = (70, 130, 180)  # sky
    rgb[height // 2:] = (128, 64, 128)  # road
    x = int(rng.integers(0, width // 2))
    rgb[height // 4: height // 2, x: x + width // 3] = (70, 70, 70)  # building
    bx, by, size = int(rng.integers(width // 4, 3 * width // 4)), int(rng.integers(height // 2, height - 40)), 24
    rgb[by: by + size, bx: bx + size] = rng.integers(0, 256, 3)  # an object on the road
    noise = rng.integers(-20, 20, rgb.shape)
    return np.clip(rgb.astype(int) + noise, 0, 255).astype(np.uint8)


def main() -> int:
    from hypood_ros.evaluation.evaluate import score_maps
    from hypood_ros.model import build_segmentor, save_checkpoint
    from hypood_ros.runtimes import load_backend
    from hypood_ros.scores import SCORES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--model", type=Path, default=None, help="a checkpoint instead of a random preset")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--size", type=int, nargs=2, default=(720, 1280), metavar=("H", "W"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if path is None:
            torch.manual_seed(0)
            path = save_checkpoint(build_segmentor(args.preset).eval(), Path(tmp) / "model.pt")
        backend = load_backend(path, input_hw=(518, 1036))
    names = [n for n, s in SCORES.items() if not s.needs_sml]
    diffs = {n: [] for n in names}
    spread = {n: [] for n in names}
    label_changes = []
    for i in range(args.frames):
        rgb = street_frame(i, *args.size)
        image = score_maps(backend, rgb, names, args.size, {}, resolution="image")
        network = score_maps(backend, rgb, names, args.size, {}, resolution="network")
        for n in names:
            diffs[n].append(np.abs(image[n] - network[n]).ravel())
            spread[n].append(image[n].ravel())
        label_changes.append(_label_change(backend, rgb, args.size))
    model = args.model or f"random {args.preset} (seed 0)"
    print(f"model {model}, input 1036x518, {args.frames} generated frames at {args.size[1]}x{args.size[0]}; "
          f"class ids differ on {100 * float(np.mean(label_changes)):.2f}% of pixels")
    print("| score | max abs diff | 99th pct abs diff | score spread (p99 - p1) |")
    print("|---|---:|---:|---:|")
    for n in names:
        d, s = np.concatenate(diffs[n]), np.concatenate(spread[n])
        width = np.percentile(s, 99) - np.percentile(s, 1)
        print(f"| {n} | {d.max():.4g} | {np.percentile(d, 99):.4g} | {width:.4g} |")
    return 0


def _label_change(backend, rgb, size) -> float:
    from hypood_ros.preprocess import preprocess
    from hypood_ros.scores import ScoreInputs, score_map

    with torch.no_grad():
        out = backend.run(preprocess([rgb], backend.input_shape[2:], backend.device))
    inputs = ScoreInputs(out["seg_logits"], out["embedding"], backend.head, out["uem_logits"])
    _, image_ids = score_map("max_logit", inputs, size, "image")
    _, network_ids = score_map("max_logit", inputs, size, "network")
    return float((image_ids != network_ids).float().mean())


if __name__ == "__main__":
    raise SystemExit(main())
