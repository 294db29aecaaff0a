"""`hypood calibrate`: the OOD threshold that flags at most a target fraction of in-distribution pixels."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hypood_ros.errors import FrameError, HypoodError


def register(subparsers) -> None:
    from hypood_ros.cli.run import add_pipeline_arguments

    parser = subparsers.add_parser("calibrate", help="choose the threshold from in-distribution data")
    add_pipeline_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bag", type=Path, help="rosbag2 bag (.db3 or .mcap) with in-distribution frames")
    source.add_argument("--images", type=Path, help="folder of in-distribution images")
    parser.add_argument("--topic", help="image topic in --bag")
    parser.add_argument("--target-fpr", type=float, default=0.01,
                        help="largest fraction of in-distribution pixels that may be flagged")
    parser.add_argument("--out", required=True, type=Path, help="params YAML to write")
    parser.set_defaults(func=run)


def frame_source(args):
    """A callable yielding RGB frames (called twice by the calibration); unusable frames are skipped."""
    if args.bag is not None:
        if not args.topic:
            raise HypoodError("--topic is required with --bag")
        from hypood_ros.bags import frame_rgb, read_frames

        def frames():
            for frame in read_frames(args.bag, args.topic):
                try:
                    yield frame_rgb(frame)
                except FrameError:
                    continue
        return frames, f"bag {args.bag} topic {args.topic}"

    from hypood_ros.images import read_image

    if not args.images.is_dir():
        raise HypoodError(f"image folder not found: {args.images}")
    files = sorted(p for p in args.images.iterdir() if p.is_file())

    def frames():
        for path in files:
            try:
                yield read_image(path)
            except FrameError:
                continue
    return frames, f"images {args.images}"


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hypood_ros.calibration import calibrate, write_params
    from hypood_ros.cli.run import pipeline_from_args

    frames, source = frame_source(args)
    pipeline = pipeline_from_args(args)

    def with_progress():
        return tqdm(frames(), desc="hypood calibrate", unit="frame", file=sys.stderr)

    result = calibrate(pipeline, with_progress, args.target_fpr)
    write_params(args.out, result, pipeline.config, source, str(args.model))
    print(f"threshold {result.threshold:.6g} for score {pipeline.config.score}: flags "
          f"{result.flagged_fraction:.4%} of {result.pixels} pixels in {result.frames} frames "
          f"(target {args.target_fpr:.4%}); wrote {args.out}")
    return 0
