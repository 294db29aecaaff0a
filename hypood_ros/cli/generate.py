"""`hypood generate`: generated street scenes as a Cityscapes training set, an SMIYC-layout anomaly set or
a rosbag2 drive (see hypood_ros/synthetic/)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _size(text: str):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HEIGHTxWIDTH, got {text!r}") from None
    if h < 32 or w < 32:
        raise argparse.ArgumentTypeError(f"size must be at least 32x32, got {text!r}")
    return h, w


def register(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="generated street scenes: training set, anomaly set or bag")
    parser.add_argument("kind", choices=["cityscapes", "smiyc", "bag"],
                        help="cityscapes: anomaly-free train/val splits; smiyc: scenes with evaluation-family "
                             "anomalies (dataset_AnomalyTrack and dataset_ObstacleTrack); "
                             "bag: one drive as an MCAP bag (Image + CameraInfo)")
    parser.add_argument("out", type=Path, help="output folder (bag: the bag directory, must not exist)")
    parser.add_argument("--seed", type=int, default=0, help="first scene seed (scene i uses seed + i)")
    parser.add_argument("--count", type=int, default=100, help="cityscapes: train images; smiyc: images; bag: frames")
    parser.add_argument("--val", type=int, default=0,
                        help="cityscapes: held-out val images (seeds after the train ones)")
    parser.add_argument("--size", type=_size, default=(240, 480), help="HEIGHTxWIDTH (default 240x480)")
    parser.add_argument("--family", choices=["evaluation", "training", "none"], default="evaluation",
                        help="anomaly family of smiyc/bag scenes (default: evaluation, never used in training)")
    parser.add_argument("--fps", type=float, default=10.0, help="bag: frame rate")
    parser.add_argument("--speed", type=float, default=8.0, help="bag: vehicle speed, m/s")
    parser.add_argument("--topic", default="/front/image_raw", help="bag: image topic")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hypood_ros.errors import HypoodError
    from hypood_ros.synthetic import writers

    if args.count <= 0 or args.val < 0:
        raise HypoodError("--count must be positive and --val not negative")
    family = None if args.family == "none" else args.family
    total = args.count + args.val
    with tqdm(total=total, desc=f"hypood generate {args.kind}", unit="img", file=sys.stderr) as bar:
        if args.kind == "cityscapes":
            writers.write_cityscapes(args.out, "train", range(args.seed, args.seed + args.count), args.size, bar)
            if args.val:
                writers.write_cityscapes(args.out, "val", range(args.seed + args.count, args.seed + total),
                                         args.size, bar)
        elif args.kind == "smiyc":
            def frames():
                for i in range(args.count):
                    f = writers.scene(args.seed + i, args.size, family, anomalies=2)
                    f.index = i
                    bar.update(1)
                    yield f
            names = []
            for f in frames():  # both tracks: the whole picture, and the road only
                names += writers.write_smiyc(args.out, [f])
                writers.write_smiyc(args.out, [f], track="ObstacleTrack")
            print(f"{len(names)} images with anomalies in {args.out}/dataset_AnomalyTrack and dataset_ObstacleTrack")
        else:
            if args.out.exists():
                raise HypoodError(f"output bag already exists: {args.out}")
            frames = writers.drive(args.seed, args.count, args.fps, args.speed, family, size=args.size)
            writers.write_bag(args.out, frames, args.topic, progress=bar)
    print(f"wrote {args.out}")
    return 0
