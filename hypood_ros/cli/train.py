"""`hypood train segmentor|uem`: stage 1 (FPN + head) or stage 2 (UEM); works under torchrun."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from hypood_ros.cli.parser import add_no_progress, add_option, add_pixel_limit
from hypood_ros.cli.paths import existing_file, existing_folder
from hypood_ros.errors import ConfigError, UsageError
from hypood_ros.folders import nearest_existing

#: What a run folder holds (besides tensorboard/): an --out with any of them is an earlier run.
RUN_FILES = ("model.pt", "last.pt", "log.csv")

HELP = "train the segmentor (stage 1) or the UEM (stage 2) on Cityscapes"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=["segmentor", "uem"],
                        help="segmentor: FPN + linear head on the frozen backbone; "
                             "uem: the UEM on the frozen segmentor")
    add_option(parser, "--data-root", default=None, metavar="DIR",
               help="Cityscapes root with leftImg8bit/ and gtFine/ (required here or as data_root in --config)")
    add_option(parser, "--config", default=None, metavar="FILE", help="YAML with TrainConfig fields")
    add_option(parser, "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
               help="override one config field (YAML value), e.g. --set steps=1000 --set crop=[518,518]")
    add_option(parser, "--init", default=None, metavar="FILE",
               help="checkpoint to start from (stage uem: the trained segmentor)")
    add_option(parser, "--out", default=None, metavar="DIR",
               help="run folder: log.csv, last.pt, model.pt; new or empty, unless --resume (default: runs/train, "
                    "or out in --config)")
    add_option(parser, "--resume", action="store_true",
               help="continue the run in OUT from OUT/last.pt (without it, an OUT that holds a run is refused)")
    add_no_progress(parser, help="no progress bar, log lines only (the bar is drawn only when stderr is a terminal)")
    add_pixel_limit(parser)
    parser.set_defaults(func=run)


def check_config(cfg, resume: bool) -> None:
    """The paths of the configuration, checked before any data loads."""
    if not cfg.data_root:
        raise UsageError("training needs the Cityscapes folder: pass --data-root DIR (with leftImg8bit/ and gtFine/) "
                         "or set data_root in --config")
    root = existing_folder(cfg.data_root, "--data-root")
    for sub in ("leftImg8bit", "gtFine"):
        if not (root / sub).is_dir():
            raise UsageError(f"--data-root {root}: no {sub}/ folder (expected the Cityscapes layout: leftImg8bit/, "
                             "gtFine/)")
    if cfg.init:
        existing_file(cfg.init, "--init", what="checkpoint file")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; it must be a folder")
    if resume and not (out / "last.pt").is_file():
        raise UsageError(f"--resume: no {out / 'last.pt'} to continue from")
    if not resume and out.is_dir():
        check_new_run_folder(out)
    probe = nearest_existing(out)
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: cannot write in {probe}")


def check_new_run_folder(out: Path) -> None:
    """A fresh run starts in a new or empty folder: an earlier run there is never overwritten."""
    try:
        entries = {p.name for p in out.iterdir()}
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot read the folder ({exc.strerror or exc})") from None
    found = [name for name in RUN_FILES if name in entries]
    if "last.pt" in found:
        raise UsageError(f"--out {out} already holds a training run ({', '.join(found)}); pass --resume to "
                         "continue it, or choose a new folder")
    if found:
        raise UsageError(f"--out {out} already holds a training run ({', '.join(found)}) with no last.pt to "
                         "resume from; choose a new folder")
    if entries:
        raise UsageError(f"--out {out} already exists and is not empty; choose a new folder")


def run(args: argparse.Namespace) -> int:
    from hypood_ros.training.config import load_config
    from hypood_ros.training.trainer import train

    if args.config:
        existing_file(args.config, "--config", (".yaml", ".yml"), "YAML file")
    try:
        cfg = load_config(args.config, args.overrides, stage=args.stage, data_root=args.data_root, init=args.init,
                          out=args.out)
    except ConfigError as exc:  # a value on the command line or in --config: the command cannot work as given
        raise UsageError(str(exc)) from None
    check_config(cfg, args.resume)
    final = train(cfg, resume=args.resume, show_progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0
        print(f"wrote {final}")
    return 0
