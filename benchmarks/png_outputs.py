"""Sizes of the node's lossless PNG outputs (`semantic/labels/compressed`, `ood/mask/compressed`) against the
raw mono8 images, and the CPU time of the encoding, per frame size and PNG level.

    python benchmarks/png_outputs.py [--scenes 10] [--sizes 320x640,640x1280,960x1920] [--levels 1,3,9]

The labels and masks are the shipped demo model's (models/demo, its params.yaml: score, threshold, road
region, opening) on generated street scenes with obstacles (`hypood_ros.synthetic`, seeds 2000+): what the
node publishes for them. Each PNG is decoded again and compared with the raw image (it must be equal bit
for bit). Bytes are the CompressedImage payload against the Image payload (H*W). Encode time is CPU time
(time.process_time) per image, mean over the scenes. Generated scenes and a small model: a measurement of
this pipeline's outputs, not of real roads.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hypood_ros.node.params_files import node_values  # noqa: E402
from hypood_ros.pipeline import PIPELINE_FIELDS, FramePipeline, PipelineConfig  # noqa: E402
from hypood_ros.png import decode_png, encode_png  # noqa: E402
from hypood_ros.runtimes import load_backend, resolve_input_size  # noqa: E402
from hypood_ros.synthetic import writers  # noqa: E402

MODEL = REPO / "models" / "demo" / "model.pt"
PARAMS = REPO / "models" / "demo" / "params.yaml"


def outputs(pipeline, seeds, hw):
    """(labels, mask) of the demo model per generated scene of size `hw`."""
    out = []
    for seed in seeds:
        frame = writers.scene(seed, hw, "evaluation", anomalies=2)
        result = pipeline.process(frame.rgb)
        out.append((result.labels, result.mask))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--sizes", default="320x640,640x1280,960x1920", help="HxW frame sizes")
    parser.add_argument("--levels", default="1,3,9", help="PNG levels (png_level)")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    levels = [int(v) for v in args.levels.split(",")]

    values = node_values(PARAMS)
    config = PipelineConfig(outputs={"labels", "mask"},
                            **{k: v for k, v in values.items() if k in PIPELINE_FIELDS})
    backend = load_backend(str(MODEL), device="cpu", input_hw=resolve_input_size(MODEL).hw)
    pipeline = FramePipeline(backend, config)
    seeds = range(2000, 2000 + args.scenes)

    print(f"demo model, {args.scenes} generated scenes with obstacles per size; bytes: mean per frame")
    print("| frame | output | content | raw bytes | png_level | PNG bytes | ratio | encode ms (CPU) | equal |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for hw in sizes:
        images = outputs(pipeline, seeds, hw)
        for index, name in enumerate(("labels", "mask")):
            raw = hw[0] * hw[1]
            if name == "labels":
                content = f"{np.mean([len(np.unique(p[0])) for p in images]):.1f} ids"
            else:
                content = f"{100 * np.mean([(p[1] > 0).mean() for p in images]):.2f}% set"
            for level in levels:
                sizes_, cpu, equal = [], 0.0, True
                for pair in images:
                    image = pair[index]
                    start = time.process_time()
                    data = encode_png(image, level)
                    cpu += time.process_time() - start
                    sizes_.append(len(data))
                    equal &= bool(np.array_equal(decode_png(data), image))
                mean = float(np.mean(sizes_))
                print(f"| {hw[1]}x{hw[0]} | {name} | {content} | {raw} | {level} | {mean:.0f} | {raw / mean:.0f}:1 | "
                      f"{1000 * cpu / len(images):.2f} | {'yes' if equal else 'NO'} |")


if __name__ == "__main__":
    main()
