"""`hypood eval`: every OOD score on a benchmark (SMIYC, Road Anomaly, Fishyscapes), side by side."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict

from hypood_ros.cli.parser import (
    add_model_options,
    add_option,
    add_pixel_limit,
    add_score_params,
    add_sml_stats,
    int_at_least,
)
from hypood_ros.cli.paths import Output, existing_file, existing_folder
from hypood_ros.errors import ConfigError, UsageError

HELP = "AP / AUROC / FPR95 of every score on a benchmark, with curves and histograms"
#: What eval takes from --params-file (options given on the command line win): the score parameters and the
#: network input; the node's other parameters (score, threshold, ...) do not change what eval measures.
FROM_PARAMS_FILE = ("score_resolution", "eta", "lam", "delta", "input_height", "input_width")


def configure(parser: argparse.ArgumentParser) -> None:
    from hypood_ros.evaluation.datasets import LAYOUTS, READERS
    from hypood_ros.evaluation.evaluate import PROTOCOLS

    parser.epilog = "layouts under --data-root:\n" + "\n".join(f"  {name}: {text}" for name, text in LAYOUTS.items())

    add_option(parser, "--dataset", required=True, choices=sorted(READERS), help="benchmark and track")
    add_option(parser, "--data-root", aliases=["--root"], required=True, metavar="DIR",
               help="dataset folder in its published layout")
    add_model_options(parser)
    add_option(parser, "--scores", default="all", metavar="LIST",
               help="'all' or a comma-separated list of score names (all leaves out sml without --sml-stats)")
    add_score_params(parser, explicit=True)  # None unless given: --params-file fills the rest
    add_option(parser, "--params-file", default=None, metavar="FILE",
               help="node params YAML (as the node reads it, e.g. models/demo/params.yaml): "
                    f"{', '.join(FROM_PARAMS_FILE)} from it; options given here win")
    add_sml_stats(parser)
    add_option(parser, "--metric-pixels", aliases=["--max-pixels"], type=int_at_least(2), default=4_000_000,
               metavar="N", help="pixels kept for the metrics (a uniform sample per class beyond this)")
    add_option(parser, "--protocol", choices=PROTOCOLS, default="single",
               help="single: one pass at the network input size (fast); sliding: windows of the network input size "
                    "over the native image, stride 140x140, overlaps averaged")
    add_option(parser, "--heatmaps", type=int_at_least(0), default=3, metavar="N",
               help="number of images for which heat maps are written")
    add_option(parser, "--out", required=True, metavar="DIR",
               help="output folder (new or empty): results.md, results.json, roc.png, pr.png, histograms, heat maps")
    add_pixel_limit(parser)
    parser.set_defaults(func=run)


def params_file_values(value) -> Dict[str, Any]:
    """The node parameters the params YAML `value` gives, sections matched as ROS matches them for the node, each
    value checked as the node checks it at start; names that are no node parameter are noted in one line."""
    from hypood_ros.cli.console import note
    from hypood_ros.node.params_files import checked_values

    path = existing_file(value, "--params-file", (".yaml", ".yml"), "YAML file")
    values, unknown = checked_values(path, f"--params-file {path}")
    if unknown:
        note(f"note: --params-file {path}: ignored names that are not node parameters: {', '.join(unknown)}")
    return values


def apply_params_file(args: argparse.Namespace) -> None:
    """Options not given on the command line from --params-file, else the table's defaults."""
    from hypood_ros.defaults import default

    values = params_file_values(args.params_file) if args.params_file else {}
    for name in FROM_PARAMS_FILE:
        if getattr(args, name) is None:
            setattr(args, name, values.get(name, default(name)))


def run(args: argparse.Namespace) -> int:
    from hypood_ros.cli.console import progress
    from hypood_ros.cli.run import load_model, sml_stats_from_args
    from hypood_ros.evaluation.datasets import open_dataset
    from hypood_ros.evaluation.evaluate import evaluate, select_scores
    from hypood_ros.scores import SCORES

    root = existing_folder(args.data_root, "--data-root")
    apply_params_file(args)
    stats = sml_stats_from_args(args)
    names = select_scores(args.scores, stats is not None)
    if not names:
        raise UsageError("--scores names no score")
    needs_stats = [n for n in names if SCORES[n].needs_sml]
    if needs_stats and stats is None:
        raise ConfigError(f"score {needs_stats[0]!r} needs SML statistics: fit them with `hypood fit-sml` and pass "
                          "--sml-stats")
    with Output(args.out, "--out", kind="folder") as tmp:
        dataset = open_dataset(args.dataset, root)
        backend = load_model(args)
        params = {"eta": args.eta, "lam": args.lam, "delta": args.delta}
        with progress(total=len(dataset.samples), desc=f"hypood eval {args.dataset}", unit="img") as bar:
            evaluate(backend, dataset, names, tmp, params, stats, args.metric_pixels, args.heatmaps, bar,
                     resolution=args.score_resolution, protocol=args.protocol)
    print((Path(args.out) / "results.md").read_text())
    return 0
