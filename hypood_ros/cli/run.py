"""`hypood run`: the frame pipeline over a folder of images, writing every output as files."""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Dict, List

import numpy as np

from hypood_ros.cli.models import pipeline_from_args
from hypood_ros.cli.parser import add_no_progress, add_option, add_pipeline_options
from hypood_ros.cli.paths import Output, image_files
from hypood_ros.errors import FrameError

HELP = "run the pipeline on a folder of images and write every output as files"
def configure(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "--images", required=True, metavar="DIR",
               help="folder of input images; files that are not usable images are skipped with a note")
    add_pipeline_options(parser, explicit=True)  # None unless given: --params-file fills the rest
    add_option(parser, "--params-file", action="append", default=[], metavar="FILE",
               help="node params YAML (as the node reads it, e.g. models/demo/params.yaml, the score, threshold and "
                    "region calibrated for the demo model): every pipeline option not given here from it, else "
                    "the node's default; repeatable, later files win")
    add_option(parser, "--out", required=True, metavar="DIR",
               help="output folder (new or empty): NAME_labels.png, _color.png, _score.npy, _score.png, _mask.png, "
                    "_overlay.png per input")
    add_no_progress(parser)
    parser.set_defaults(func=run)


def output_names(files: List[Path]) -> Dict[Path, str]:
    """Output name per input: the stem, or the whole file name where two inputs share a stem (a.png, a.jpg)."""
    stems = Counter(p.stem for p in files)
    return {p: p.stem if stems[p.stem] == 1 else p.name for p in files}


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
    from hypood_ros.cli.console import note, progress
    from hypood_ros.images import read_image

    files = image_files(args.images)
    names = output_names(files)
    shared = sorted(p.name for p in files if names[p] == p.name and p.stem != p.name)
    out = Output(args.out, "--out", kind="folder")
    try:
        pipeline = pipeline_from_args(args)
        if shared:
            note(f"note: {', '.join(shared)} share a stem; their outputs are named after the whole file name")
        done = 0
        with progress(files, desc="hypood run", unit="img") as bar:
            for path in bar:
                try:
                    result = pipeline.process(read_image(path))
                except FrameError as exc:
                    note(f"skipped {path.name}: {exc}")
                    continue
                write_result(out.tmp, names[path], result)
                done += 1
    except BaseException:
        out.discard()
        raise
    if not done:
        out.discard()
        print(f"processed 0 of {len(files)} files; nothing written")
        return 1
    out.commit()
    print(f"processed {done} of {len(files)} files; outputs in {args.out}")
    return 0
