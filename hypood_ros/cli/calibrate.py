"""`hypood calibrate`: the OOD threshold that flags at most a target fraction of in-distribution pixels."""
from __future__ import annotations

import argparse

from hypood_ros.cli.parser import add_no_progress, add_option, add_overwrite, add_pipeline_options, float_in
from hypood_ros.cli.paths import Output
from hypood_ros.errors import FrameError, HypoodError, MissingDependencyError, UsageError

HELP = "choose the threshold from in-distribution data (a bag or an image folder)"


def add_frame_source(parser: argparse.ArgumentParser) -> None:
    """--bag/--topic or --images: where in-distribution frames come from (calibrate, fit-sml)."""
    source = parser.add_mutually_exclusive_group(required=True)
    add_option(source, "--bag", metavar="PATH", help="rosbag2 bag (folder, .db3 or .mcap) with in-distribution frames")
    add_option(source, "--images", metavar="DIR", help="folder of in-distribution images")
    add_option(parser, "--topic", help="image topic in --bag (sensor_msgs/Image or CompressedImage)")


def frame_source(args: argparse.Namespace, prefix: str = ""):
    """(frames, description): `frames()` yields RGB frames and may be called more than once.

    Everything about the source is checked here, before any model loads: the paths, the topic, and
    that at least one frame is usable. Unusable frames are skipped. `prefix`: the options are spelled
    `--{prefix}bag`, `--{prefix}topic`, `--{prefix}images` (e.g. "calib-" for `hypood export`).
    """
    bag, topic, images = (getattr(args, (prefix + name).replace("-", "_")) for name in ("bag", "topic", "images"))
    if bag is not None:
        from pathlib import Path

        from hypood_ros.cli.extras import missing, missing_message

        if not topic:
            raise UsageError(f"--{prefix}bag needs --{prefix}topic (the image topic to read)")
        if missing(["rosbags"]):
            raise MissingDependencyError(missing_message("rosbags", args.command))
        if not Path(bag).exists():
            raise UsageError(f"--{prefix}bag {bag}: no such bag")
        from hypood_ros.bags import frame_rgb, read_frames

        def frames():
            for frame in read_frames(bag, topic):
                try:
                    yield frame_rgb(frame)
                except FrameError:
                    continue
        source = f"bag {bag} topic {topic}"
    else:
        from hypood_ros.cli.paths import image_files
        from hypood_ros.images import read_image

        if topic:
            raise UsageError(f"--{prefix}topic applies to --{prefix}bag only")
        files = image_files(images, f"--{prefix}images")

        def frames():
            for path in files:
                try:
                    yield read_image(path)
                except FrameError:
                    continue
        source = f"images {images}"
    probe = frames()
    try:
        if next(probe, None) is None:
            raise HypoodError(f"no usable frames in {source}")
    finally:
        probe.close()  # closes the bag reader
    return frames, source


def configure(parser: argparse.ArgumentParser) -> None:
    add_frame_source(parser)
    add_pipeline_options(parser, mask=False)  # the threshold is computed from raw scores: no mask options
    add_option(parser, "--target-fpr", type=float_in(0.0, 1.0, low_open=True, high_open=True), default=0.01,
               metavar="FRACTION", help="largest fraction of the in-distribution pixels inside the region of interest "
                                        "(--roi) that may be flagged, in (0, 1)")
    add_option(parser, "--out", required=True, metavar="FILE", help="params YAML to write (.yaml)")
    add_overwrite(parser)
    add_no_progress(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hypood_ros.calibration import calibrate, write_params
    from hypood_ros.cli.console import progress
    from hypood_ros.cli.models import pipeline_from_args

    out = Output(args.out, "--out", suffixes=(".yaml", ".yml"), overwrite=args.overwrite)
    with out as tmp:
        frames, source = frame_source(args)
        pipeline = pipeline_from_args(args)

        def with_progress():
            with progress(frames(), desc="hypood calibrate", unit="frame") as bar:
                yield from bar

        result = calibrate(pipeline, with_progress, args.target_fpr)
        write_params(tmp, result, pipeline.config, source, str(args.model), pipeline.backend.input_shape[2:])
    region = "pixels" if result.roi == "none" else f"pixels inside the region of interest ({result.roi}, " \
        f"{result.pixels / max(result.total_pixels, 1):.1%} of the picture)"
    print(f"threshold {result.threshold:.6g} for score {pipeline.config.score}: flags "
          f"{result.flagged_fraction:.4%} of {result.pixels} {region} in {result.frames} frames "
          f"(target {args.target_fpr:.4%}); wrote {args.out}")
    return 0
