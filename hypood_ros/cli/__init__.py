"""`hypood` command line: one subcommand per module in this package.

Each subcommand module defines `register(subparsers)`, which adds its parser and sets
`func(args) -> int` as the default handler.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from hypood_ros.errors import HypoodError

#: Subcommand modules, in the order `hypood --help` lists them.
COMMANDS = [
    "run",
    "convert",
    "export",
    "build_engine",
    "replay",
    "calibrate",
    "fit_sml",
    "eval",
    "train",
    "generate",
    "demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hypood", description="Out-of-distribution obstacle segmentation tools."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"hypood_ros.cli.{name}").register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HypoodError as exc:
        print(f"hypood {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
