"""`hypood convert`: official DINOv2 / UEM checkpoints -> this project's checkpoint format."""
from __future__ import annotations

import argparse

from hypood_ros.cli.parser import add_option, add_overwrite
from hypood_ros.cli.paths import CHECKPOINT_SUFFIXES, Output, existing_file
from hypood_ros.errors import UsageError

HELP = "convert official DINOv2 or UEM checkpoints to this project's format"


def configure(parser: argparse.ArgumentParser) -> None:
    from hypood_ros.model import PRESETS
    from hypood_ros.model.convert import KINDS

    add_option(parser, "--kind", required=True, choices=KINDS,
               help="dinov2: hub backbone weights; uem-segmentor / uem: the UEM authors' Lightning checkpoints")
    add_option(parser, "--model", aliases=["--input"], required=True, metavar="FILE",
               help="the official checkpoint to convert (.pth / .ckpt)")
    add_option(parser, "--segmentor", default=None, metavar="FILE",
               help="segmentor checkpoint, for a UEM checkpoint that does not contain it")
    add_option(parser, "--preset", choices=sorted(PRESETS), default=None,
               help="model preset: required for dinov2; for uem / uem-segmentor the checkpoint's own "
                    "hyper-parameters name the model, and --preset overrides them")
    add_option(parser, "--out", required=True, metavar="FILE", help="project checkpoint to write (.pt)")
    add_overwrite(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hypood_ros.model.convert import convert

    source = existing_file(args.model, "--model", what="checkpoint file")
    segmentor = existing_file(args.segmentor, "--segmentor", what="checkpoint file") if args.segmentor else None
    if args.kind == "dinov2" and not args.preset:
        raise UsageError("--kind dinov2 needs --preset (the backbone's weights do not say which model they belong to)")
    with Output(args.out, "--out", suffixes=CHECKPOINT_SUFFIXES, overwrite=args.overwrite) as tmp:
        convert(args.kind, source, tmp, preset=args.preset, segmentor_path=segmentor)
    print(f"wrote {args.out}")
    return 0
