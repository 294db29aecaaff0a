"""`hypood eval`: every OOD score on a benchmark (SMIYC, Road Anomaly, Fishyscapes), side by side."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    from hypood_ros.evaluation.datasets import READERS
    from hypood_ros.evaluation.evaluate import PROTOCOLS

    parser = subparsers.add_parser("eval", help="AP / AUROC / FPR95 of every score on a benchmark")
    parser.add_argument("--dataset", required=True, choices=sorted(READERS))
    parser.add_argument("--root", required=True, type=Path, help="dataset folder in its published layout")
    parser.add_argument("--model", required=True, help="checkpoint, ONNX file or engine")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--height", type=int, default=518)
    parser.add_argument("--width", type=int, default=1036)
    parser.add_argument("--scores", default="all", help="'all' or a comma-separated list of score names")
    parser.add_argument("--eta", type=float, default=1.5)
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--delta", type=float, default=0.0)
    parser.add_argument("--sml-stats", type=Path, default=None, help="JSON with SML per-class 'mean' and 'std'")
    parser.add_argument("--max-pixels", type=int, default=4_000_000,
                        help="pixels kept for the metrics (uniform sample per class beyond this)")
    parser.add_argument("--heatmaps", type=int, default=3, help="images for which heat maps are written")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="single",
                        help="single: one pass at the network input size (fast); sliding: windows of the network "
                             "input size over the native image, stride 140x140, overlaps averaged")
    parser.add_argument("--out", required=True, type=Path)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hypood_ros.defaults import default
    from hypood_ros.evaluation.datasets import open_dataset
    from hypood_ros.evaluation.evaluate import evaluate, select_scores
    from hypood_ros.runtimes import load_backend
    from hypood_ros.scores import load_sml_stats

    dataset = open_dataset(args.dataset, args.root)
    stats = load_sml_stats(args.sml_stats) if args.sml_stats else None
    names = select_scores(args.scores, stats is not None)
    backend = load_backend(args.model, backend=args.backend, device=args.device, input_hw=(args.height, args.width))
    params = {"eta": args.eta, "lam": args.lam, "delta": args.delta}
    with tqdm(total=len(dataset.samples), desc=f"hypood eval {args.dataset}", unit="img", file=sys.stderr) as bar:
        evaluate(backend, dataset, names, args.out, params, stats, args.max_pixels, args.heatmaps, bar,
                 resolution=getattr(args, "score_resolution", None) or default("score_resolution"),
                 protocol=args.protocol)
    print((args.out / "results.md").read_text())
    return 0
