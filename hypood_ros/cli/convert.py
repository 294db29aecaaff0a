"""`hypood convert`: official DINOv2 / UEM checkpoints -> this project's checkpoint format."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    from hypood_ros.model import PRESETS
    from hypood_ros.model.convert import KINDS

    parser = subparsers.add_parser("convert", help="convert official DINOv2 or UEM checkpoints")
    parser.add_argument("--kind", required=True, choices=KINDS,
                        help="dinov2: hub backbone weights; uem-segmentor / uem: the UEM authors' Lightning checkpoints")
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--segmentor", type=Path, default=None,
                        help="segmentor checkpoint, for a UEM checkpoint that does not contain it")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="model preset: required for dinov2; for uem / uem-segmentor the checkpoint's own "
                             "hyper-parameters name the model, and --preset overrides them")
    parser.add_argument("--out", required=True, type=Path)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hypood_ros.model.convert import convert

    out = convert(args.kind, args.input, args.out, preset=args.preset, segmentor_path=args.segmentor)
    print(f"wrote {out}")
    return 0
