"""`hypood train segmentor|uem`: stage 1 (FPN + head) or stage 2 (UEM); works under torchrun."""
from __future__ import annotations

import argparse
import os


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train the segmentor (stage 1) or the UEM (stage 2)")
    parser.add_argument("stage", choices=["segmentor", "uem"])
    parser.add_argument("--config", default=None, help="YAML with TrainConfig fields")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config field (YAML value), e.g. --set steps=1000 --set crop=[518,518]")
    parser.add_argument("--data-root", default=None, help="Cityscapes root (leftImg8bit/, gtFine/)")
    parser.add_argument("--init", default=None, help="checkpoint to start from")
    parser.add_argument("--out", default=None, help="run folder (log.csv, last.pt, model.pt)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hypood_ros.training.config import load_config
    from hypood_ros.training.trainer import train

    cfg = load_config(args.config, args.overrides, stage=args.stage, data_root=args.data_root, init=args.init,
                      out=args.out)
    final = train(cfg, resume=args.resume, show_progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0
        print(f"wrote {final}")
    return 0
