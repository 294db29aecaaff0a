"""`hypood fit-sml`: per-class max-logit statistics on in-distribution data, for the `sml` score."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("fit-sml", help="fit the SML score's per-class statistics on ID data")
    parser.add_argument("--model", required=True)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--height", type=int, default=518)
    parser.add_argument("--width", type=int, default=1036)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bag", type=Path)
    source.add_argument("--images", type=Path)
    parser.add_argument("--topic", help="image topic in --bag")
    parser.add_argument("--out", required=True, type=Path, help="JSON with 'mean' and 'std' per class")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from hypood_ros.cli.calibrate import frame_source
    from hypood_ros.preprocess import preprocess
    from hypood_ros.runtimes import load_backend
    from hypood_ros.scores import SMLFitter

    frames, source = frame_source(args)
    backend = load_backend(args.model, backend=args.backend, device=args.device, input_hw=(args.height, args.width))
    fitter = None
    with torch.inference_mode():
        for rgb in tqdm(frames(), desc="hypood fit-sml", unit="frame", file=sys.stderr):
            logits = backend.run(preprocess([rgb], backend.input_shape[2:], backend.device))["seg_logits"]
            fitter = fitter or SMLFitter(logits.shape[1])
            fitter.update(logits)
    if fitter is None:
        from hypood_ros.errors import HypoodError

        raise HypoodError(f"no usable frames in {source}")
    stats = fitter.finish()
    args.out.write_text(json.dumps({**stats.to_dict(), "fitted_on": source, "model": str(args.model),
                                    "pixels_per_class": fitter.count.tolist()}, indent=1) + "\n")
    print(f"wrote {args.out} ({int(fitter.count.sum())} pixels from {source})")
    return 0
