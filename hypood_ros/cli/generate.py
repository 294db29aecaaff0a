"""`hypood generate`: generated street scenes as a Cityscapes training set, an SMIYC anomaly set or a bag.

The scenes come from hypood_ros/synthetic/. The output folder must be new or empty; it appears whole once
everything is written (a failed or interrupted run leaves nothing).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from hypood_ros.cli.parser import add_no_progress, add_option, float_in, int_at_least
from hypood_ros.cli.paths import Output
from hypood_ros.errors import HypoodError, UsageError

HELP = "generate street scenes: a Cityscapes training set, an SMIYC anomaly set or a rosbag2 drive"
KINDS = ("cityscapes", "smiyc", "bag")
#: Smallest side of a generated picture (the scene renderer's details need some room).
MIN_SIDE = 32
#: Frame rate and speed of a generated drive: a camera, a vehicle.
MAX_FPS = 1000.0
MAX_SPEED = 100.0  # m/s
#: A fully qualified ROS 2 topic name: /token(/token)*, each token a letter or _ then letters, digits, _.
_ABSOLUTE_TOPIC = re.compile(r"(/[A-Za-z_][A-Za-z0-9_]*)+")
#: A relative one (no leading /); a ~ (private) prefix and {substitutions} are left to the node's names.
_RELATIVE_TOPIC = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*")


def image_size(text: str):
    """HEIGHTxWIDTH, each side at least MIN_SIDE, at most the pixel limit the image readers use."""
    from hypood_ros.images import MAX_PIXELS

    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 240x480, got {text!r}") from None
    if h < MIN_SIDE or w < MIN_SIDE:
        raise argparse.ArgumentTypeError(f"both sides must be at least {MIN_SIDE}, got {h}x{w}")
    if h * w > MAX_PIXELS:
        raise argparse.ArgumentTypeError(f"{h}x{w} is {h * w} pixels, above the limit of {MAX_PIXELS} that the "
                                         "image readers use")
    return h, w


image_size.__name__ = "size"


def bag_topic(text: str) -> str:
    """An absolute ROS 2 topic name (a bag records fully qualified names)."""
    if _ABSOLUTE_TOPIC.fullmatch(text):
        return text
    if _RELATIVE_TOPIC.fullmatch(text):
        raise argparse.ArgumentTypeError(f"a bag's topic must be absolute (start with /), e.g. /{text}")
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a valid ROS topic name: /-separated tokens of letters, digits and _, each starting with a "
        "letter or _, no empty token and no trailing /; e.g. /front/image_raw")


bag_topic.__name__ = "topic"


def configure(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "kind", choices=KINDS, metavar="KIND",
               help="cityscapes: anomaly-free train (and val) splits for `hypood train`; smiyc: scenes with "
                    "anomalies in both SMIYC layouts (dataset_AnomalyTrack, dataset_ObstacleTrack) for `hypood "
                    "eval`; bag: one drive as an MCAP bag (Image + CameraInfo) for `hypood replay`")
    add_option(parser, "out", metavar="OUT",
               help="output folder, new or empty (bag: the bag's folder, which must not exist)")
    add_option(parser, "--count", type=int_at_least(1), default=100, metavar="N",
               help="cityscapes: train images; smiyc: scenes; bag: frames")
    add_option(parser, "--seed", type=int_at_least(0), default=0, metavar="N",
               help="first scene seed (scene i uses seed + i; a bag's street uses seed)")
    add_option(parser, "--size", type=image_size, default=(240, 480), metavar="HxW",
               help="picture size HEIGHTxWIDTH (default: 240x480)")
    only = {}
    only["val"] = add_option(parser, "--val", type=int_at_least(0), metavar="N",
                             help="cityscapes only: held-out val images (seeds after the train ones)")
    only["family"] = add_option(parser, "--family", choices=["evaluation", "training", "none"],
                                help="smiyc and bag: anomaly family of the scenes (evaluation: never used in "
                                     "training; none: bag only, a drive without anomalies)")
    only["fps"] = add_option(parser, "--fps", type=float_in(0.0, MAX_FPS, low_open=True), metavar="HZ",
                             help="bag only: frame rate")
    only["speed"] = add_option(parser, "--speed", type=float_in(0.0, MAX_SPEED), metavar="M/S",
                               help="bag only: vehicle speed in metres per second")
    only["topic"] = add_option(parser, "--topic", type=bag_topic, metavar="TOPIC",
                               help="bag only: image topic, absolute; the CameraInfo goes to its sibling camera_info")
    only["labels"] = add_option(parser, "--labels", action="store_const", const=True, default=None,
                                help="bag only: also write each frame's OOD ground truth (mono8: 0 in-distribution, 1 "
                                     "OOD, 255 void) to the image topic's sibling ood_label, for `hypood fleet`")
    for dest, action in only.items():  # None unless given, so that a kind it does not apply to can refuse it
        action.shown_default = _ONLY[dest][1]
    add_no_progress(parser)
    parser.set_defaults(func=run)


#: Options that apply to some kinds only: {dest: (kinds, default)}.
_ONLY = {"val": (("cityscapes",), 0), "family": (("smiyc", "bag"), "evaluation"), "fps": (("bag",), 10.0),
         "speed": (("bag",), 8.0), "topic": (("bag",), "/front/image_raw"), "labels": (("bag",), False)}


def check_args(args: argparse.Namespace) -> None:
    """Options given for a kind they do not apply to are refused; the others take their defaults."""
    for dest, (kinds, default) in _ONLY.items():
        value = getattr(args, dest)
        if value is not None and args.kind not in kinds:
            raise UsageError(f"--{dest} applies to {' and '.join(kinds)} only, not to {args.kind}")
        setattr(args, dest, default if value is None else value)
    if args.kind == "smiyc" and args.family == "none":
        raise UsageError("--family none applies to bag only: an SMIYC dataset holds only frames with an anomaly in "
                         "view (choose evaluation or training)")
    if args.kind == "bag":
        if args.topic.rsplit("/", 1)[-1] == "camera_info":
            raise UsageError(f"--topic {args.topic}: the camera_info name is taken by the bag's CameraInfo; "
                             "name the image topic, e.g. /front/image_raw")
        if Path(args.out).exists():
            raise UsageError(f"output bag {args.out} already exists; a bag is written as a new folder, choose "
                             "another name")


def run(args: argparse.Namespace) -> int:
    from hypood_ros.cli.console import progress
    from hypood_ros.synthetic import writers

    check_args(args)
    family = None if args.family == "none" else args.family
    if args.kind == "bag":
        # the writer makes the bag under a temporary name and renames it when complete; Output checks the
        # destination first and removes any parent folder it made if the run fails
        out = Output(args.out, "output bag", kind="folder", create=False)
        try:
            frames = writers.drive(args.seed, args.count, args.fps, args.speed, family, size=args.size)
            with progress(total=args.count, desc="hypood generate bag", unit="frame") as bar:
                writers.write_bag(args.out, frames, args.topic, progress=bar, labels=args.labels)
        except BaseException:
            out.discard()
            raise
        out.release()
        extra = " and ood_label" if args.labels else ""
        print(f"wrote {args.out}: {args.count} frames on {args.topic} and its camera_info{extra}")
        return 0
    total = args.count + args.val
    with Output(args.out, "output folder", kind="folder") as tmp, \
            progress(total=total, desc=f"hypood generate {args.kind}", unit="img") as bar:
        if args.kind == "cityscapes":
            writers.write_cityscapes(tmp, "train", range(args.seed, args.seed + args.count), args.size, bar)
            if args.val:
                writers.write_cityscapes(tmp, "val", range(args.seed + args.count, args.seed + total), args.size,
                                         bar)
            summary = f"{args.count} train{f' and {args.val} val' if args.val else ''} image{'s' if total > 1 else ''}"
        else:
            names = []
            for i in range(args.count):  # both layouts: the whole picture, and the road only
                f = writers.scene(args.seed + i, args.size, family, anomalies=2)
                f.index = i
                names += writers.write_smiyc(tmp, [f])
                writers.write_smiyc(tmp, [f], track="ObstacleTrack")
                bar.update(1)
            if not names:
                raise HypoodError(f"none of the {args.count} scenes has an anomaly in view; nothing written (use "
                                  "more scenes or another --seed)")
            summary = (f"{len(names)} image{'s' if len(names) > 1 else ''} with anomalies in dataset_AnomalyTrack "
                       "and dataset_ObstacleTrack")
    print(f"wrote {args.out}: {summary}")
    return 0
