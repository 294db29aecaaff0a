"""`hypood run`: the frame pipeline over a folder of images, writing every output as files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from hypood_ros.errors import FrameError, HypoodError


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the commands that drive a FramePipeline."""
    from hypood_ros.scores import SCORES

    parser.add_argument("--model", required=True, help="checkpoint (.pt) or engine/ONNX file")
    parser.add_argument("--backend", default=None, help="backend name (default: from the file extension)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--height", type=int, default=518, help="network input height (multiple of 14)")
    parser.add_argument("--width", type=int, default=1036, help="network input width (multiple of 14)")
    parser.add_argument("--score", default="hyperspherical_llr", choices=sorted(SCORES))
    parser.add_argument("--threshold", type=float, default=0.0)
    parser.add_argument("--eta", type=float, default=1.5)
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--delta", type=float, default=0.0)
    parser.add_argument("--min-area", type=int, default=0)
    parser.add_argument("--opening", type=int, default=0)
    parser.add_argument("--road-gating", action="store_true", help="keep only obstacles on or next to the road")
    parser.add_argument("--road-radius", type=int, default=15, help="pixels around the road that count as next to it")
    parser.add_argument("--sml-stats", type=Path, default=None, help="statistics from `hypood fit-sml` (score sml)")
    parser.add_argument("--engine", type=Path, default=None,
                        help="AOTInductor package (.pt2) of the --model checkpoint: built when missing or stale, "
                             "reused otherwise")
    parser.add_argument("--rebuild-engine", action="store_true", help="build --engine even when it is current")


def pipeline_from_args(args: argparse.Namespace):
    from hypood_ros.pipeline import FramePipeline, PipelineConfig
    from hypood_ros.runtimes.engine_cache import load_or_build
    from hypood_ros.scores import load_sml_stats

    stats = load_sml_stats(args.sml_stats) if args.sml_stats else None
    config = PipelineConfig(score=args.score, threshold=args.threshold, eta=args.eta, lam=args.lam,
                            delta=args.delta, min_area=args.min_area, opening=args.opening,
                            road_gating=args.road_gating, road_radius=args.road_radius)
    backend = load_or_build(args.model, args.engine or "", args.rebuild_engine, backend=args.backend,
                            device=args.device, input_hw=(args.height, args.width))
    return FramePipeline(backend, config, sml_stats=stats)


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the pipeline on a folder of images and write the outputs")
    add_pipeline_arguments(parser)
    parser.add_argument("--images", required=True, type=Path, help="folder of input images")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.set_defaults(func=run)


def write_result(out: Path, stem: str, result) -> None:
    from hypood_ros.images import write_image
    from hypood_ros.visualize import heat_map

    write_image(out / f"{stem}_labels.png", result.labels)
    write_image(out / f"{stem}_color.png", result.color)
    np.save(out / f"{stem}_score.npy", result.score)
    write_image(out / f"{stem}_score.png", heat_map(result.score))
    write_image(out / f"{stem}_mask.png", result.mask)
    write_image(out / f"{stem}_overlay.png", result.overlay)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hypood_ros.images import read_image

    if not args.images.is_dir():
        raise HypoodError(f"image folder not found: {args.images}")
    files = sorted(p for p in args.images.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise HypoodError(f"no files in {args.images}")
    pipeline = pipeline_from_args(args)
    args.out.mkdir(parents=True, exist_ok=True)
    done = 0
    for path in tqdm(files, desc="hypood run", unit="img", file=sys.stderr):
        try:
            result = pipeline.process(read_image(path))
        except FrameError as exc:
            tqdm.write(f"skipped {path.name}: {exc}", file=sys.stderr)
            continue
        write_result(args.out, path.stem, result)
        done += 1
    print(f"processed {done} of {len(files)} files; outputs in {args.out}")
    return 0 if done else 1
