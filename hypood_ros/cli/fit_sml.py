"""`hypood fit-sml`: per-class max-logit statistics on in-distribution data, for the `sml` score."""
from __future__ import annotations

import argparse
import json

from hypood_ros.cli.calibrate import add_frame_source, frame_source
from hypood_ros.cli.parser import add_model_options, add_no_progress, add_option, add_overwrite, add_pixel_limit
from hypood_ros.cli.paths import Output
from hypood_ros.errors import HypoodError

HELP = "fit the SML score's per-class statistics on in-distribution data"


def configure(parser: argparse.ArgumentParser) -> None:
    add_frame_source(parser)
    add_model_options(parser)
    add_option(parser, "--out", required=True, metavar="FILE", help="JSON to write: 'mean' and 'std' per class (.json)")
    add_overwrite(parser)
    add_pixel_limit(parser)
    add_no_progress(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from hypood_ros.cli.console import progress
    from hypood_ros.cli.models import load_model
    from hypood_ros.preprocess import preprocess
    from hypood_ros.scores import SMLFitter

    with Output(args.out, "--out", suffixes=(".json",), overwrite=args.overwrite) as tmp:
        frames, source = frame_source(args)
        backend = load_model(args)
        fitter = None
        with torch.inference_mode(), progress(frames(), desc="hypood fit-sml", unit="frame") as bar:
            for rgb in bar:
                logits = backend.run(preprocess([rgb], backend.input_shape[2:], backend.device))["seg_logits"]
                fitter = fitter or SMLFitter(logits.shape[1])
                fitter.update(logits)
        if fitter is None:
            raise HypoodError(f"no usable frames in {source}")
        stats = fitter.finish()
        tmp.write_text(json.dumps({**stats.to_dict(), "fitted_on": source, "model": str(args.model),
                                   "pixels_per_class": fitter.count.tolist()}, indent=1) + "\n")
    print(f"wrote {args.out} ({int(fitter.count.sum())} pixels from {source})")
    return 0
