"""`hypood eval`: every OOD score on a benchmark (SMIYC, Road Anomaly, Fishyscapes), and the node's obstacle mask.

Pixel AP / AUROC / FPR95 of every score, with curves, histograms and heat maps; beside them the component
metrics of one obstacle mask made as the node makes it (score, threshold, region of interest, opening,
minimum area), measured as the SegmentMeIfYouCan benchmark measures a mask (`evaluation.mask_metrics`).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict

from hypood_ros.cli.params_file import apply_params_file
from hypood_ros.cli.parser import (
    ROI_OPTIONS,
    add_model_options,
    add_no_progress,
    add_option,
    add_param,
    add_pixel_limit,
    add_score_params,
    add_sml_stats,
    int_at_least,
)
from hypood_ros.cli.paths import Output, existing_folder
from hypood_ros.errors import ConfigError, UsageError

HELP = "AP / AUROC / FPR95 of every score on a benchmark, and the obstacle mask's component F1"
#: What the pixel metrics take from --params-file (options given on the command line win): the score
#: parameters and the network input.
FROM_PARAMS_FILE = ("score_resolution", "eta", "lam", "delta", "input_height", "input_width")
#: The obstacle mask's parameters and their options: each from the command line, else --params-file, else the
#: parameter table; the threshold has its own rule (`mask_from_args`).
MASK_OPTIONS = {"score": "--mask-score", "threshold": "--threshold", "roi": "--roi", "roi_margin": "--roi-margin",
                "roi_drop_known": "--roi-drop-known", "local_contrast": "--local-contrast", "opening": "--opening",
                "min_area": "--min-area"}
MASK_GROUP = """\
one mask made as the node makes it: score > threshold (with --local-contrast: the score minus its local
mean inside the region), inside the region of interest (formed from the predicted classes), opening,
minimum area; each value from its option, else from --params-file, else the
node's default. Measured as the SegmentMeIfYouCan benchmark measures a mask: sIoU (gt), PPV (precision of
the predicted components), component F1 at sIoU 0.25 / 0.5 / 0.75 and its mean over 0.25 ... 0.75, with
the benchmark's component sizes (smiyc-obstacle: predictions under {obstacle[0]} px dropped, ground truth
under {obstacle[1]} px void; smiyc-anomaly: {anomaly[0]} / {anomaly[1]} px; the other datasets: the generic
{generic[0]} / {generic[1]} px); and the mask's pixel recall and false-positive rate, over the whole picture
and inside the region."""


def configure(parser: argparse.ArgumentParser) -> None:
    from hypood_ros.evaluation.datasets import LAYOUTS, READERS
    from hypood_ros.evaluation.evaluate import PROTOCOLS

    parser.epilog = "layouts under --data-root:\n" + "\n".join(f"  {name}: {text}" for name, text in LAYOUTS.items())

    add_option(parser, "--dataset", required=True, choices=sorted(READERS), help="benchmark and track")
    add_option(parser, "--data-root", aliases=["--root"], required=True, metavar="DIR",
               help="dataset folder in its published layout")
    add_model_options(parser)
    add_option(parser, "--scores", default="all", metavar="LIST",
               help="'all' or a comma-separated list of score names (all leaves out sml without --sml-stats, and "
                    "delta_max_logit at --delta 0, where it equals normalized_max_logit)")
    add_score_params(parser, explicit=True)  # None unless given: --params-file fills the rest
    add_option(parser, "--params-file", default=None, metavar="FILE",
               help="node params YAML (as the node reads it, e.g. models/demo/params.yaml): "
                    f"{', '.join(FROM_PARAMS_FILE)} and the obstacle mask's {', '.join(MASK_OPTIONS)} from it; "
                    "options given here win")
    add_sml_stats(parser)
    add_option(parser, "--metric-pixels", aliases=["--max-pixels"], type=int_at_least(2), default=4_000_000,
               metavar="N", help="pixels kept for the metrics (a uniform sample per class beyond this)")
    add_option(parser, "--protocol", choices=PROTOCOLS, default="single",
               help="single: one pass at the network input size (fast); sliding: windows of the network input size "
                    "over the native image, stride 140x140, overlaps averaged")
    add_option(parser, "--heatmaps", type=int_at_least(0), default=3, metavar="N",
               help="number of images for which heat maps are written")
    from hypood_ros.defaults import default
    from hypood_ros.evaluation.components import GENERIC_SIZES, TRACK_SIZES

    mask = parser.add_argument_group("obstacle mask", MASK_GROUP.format(
        obstacle=TRACK_SIZES["smiyc-obstacle"], anomaly=TRACK_SIZES["smiyc-anomaly"], generic=GENERIC_SIZES))
    add_option(mask, "--mask-metrics", action=argparse.BooleanOptionalAction, default=True,
               help="measure the obstacle mask (on by default; --no-mask-metrics: pixel metrics only, and no "
                    "second pass)")
    add_param(mask, "score", flag="--mask-score", explicit=True,
              help=f"score of the mask (default: the --params-file's score, else {default('score')})")
    add_param(mask, "threshold", explicit=True,
              help="mask threshold, score > threshold is OOD (default: the --params-file's threshold when it is "
                   "for the mask score, else the threshold with the best pixel F1 of the mask score on the dataset, "
                   "the benchmark's default, which costs a second pass over the dataset)")
    add_score_params(mask, ROI_OPTIONS + ("opening", "min_area"), explicit=True)
    add_option(parser, "--out", required=True, metavar="DIR",
               help="output folder (new or empty): results.md, results.json, roc.png, pr.png, histograms, heat maps")
    add_pixel_limit(parser)
    add_no_progress(parser)
    parser.set_defaults(func=run)


def mask_from_args(args: argparse.Namespace, values: Dict[str, Any]):
    """The obstacle mask to measure (`MaskSpec`), or None with --no-mask-metrics (which refuses mask options).

    Each value: its option, else the params file's `values`, else the table's default. The threshold: --threshold;
    else the params file's, provided it is for the mask's score (the file's score, or the node's default
    score when the file names none) and its local contrast, since a threshold means nothing on another
    scale; else the
    benchmark's default, the best pixel F1 on the dataset (with a note when a params file was given).
    """
    from hypood_ros.defaults import default
    from hypood_ros.evaluation.mask_metrics import BEST_F1, MaskSpec

    if not args.mask_metrics:
        given = [flag for name, flag in MASK_OPTIONS.items() if getattr(args, name) is not None]
        if given:
            raise UsageError(f"{given[0]} applies to the mask metrics, which --no-mask-metrics turns off")
        return None
    chosen = {name: getattr(args, name) if getattr(args, name) is not None else values.get(name, default(name))
              for name in MASK_OPTIONS if name != "threshold"}
    notes = []
    file_score = values.get("score", default("score"))
    if args.threshold is not None:
        threshold, source = args.threshold, "--threshold"
    elif ("threshold" in values and chosen["score"] == file_score
          and chosen["local_contrast"] == values.get("local_contrast", default("local_contrast"))):
        threshold, source = values["threshold"], f"--params-file {args.params_file}"
    else:
        threshold, source = None, BEST_F1
        if args.params_file:
            file_contrast = values.get("local_contrast", default("local_contrast"))
            why = ("it has no threshold" if "threshold" not in values else
                   f"its threshold is for score {file_score}, not for the mask score {chosen['score']}"
                   if chosen["score"] != file_score else
                   f"its threshold is for local_contrast {file_contrast}, not {chosen['local_contrast']}")
            notes.append(f"--params-file {args.params_file}: {why}; the mask takes the threshold with the best pixel "
                         "F1 on this dataset (a second pass over it)")
    return MaskSpec(threshold=threshold, source=source, notes=tuple(notes), **chosen)


def run(args: argparse.Namespace) -> int:
    from hypood_ros.cli.console import note, progress
    from hypood_ros.cli.models import load_model, sml_stats_from_args
    from hypood_ros.evaluation.datasets import left_out_line, open_dataset
    from hypood_ros.evaluation.evaluate import evaluate, passes, select_scores
    from hypood_ros.evaluation.mask_metrics import mask_notes
    from hypood_ros.scores import SCORES

    root = existing_folder(args.data_root, "--data-root")
    values = apply_params_file(args, FROM_PARAMS_FILE)
    mask = mask_from_args(args, values)
    stats = sml_stats_from_args(args)
    names = select_scores(args.scores, stats is not None, args.delta or 0.0)
    if not names:
        raise UsageError("--scores names no score")
    needs_stats = [n for n in names if SCORES[n].needs_sml]
    if needs_stats and stats is None:
        raise ConfigError(f"score {needs_stats[0]!r} needs SML statistics: fit them with `hypood fit-sml` and pass "
                          "--sml-stats")
    if mask is not None and SCORES[mask.score].needs_sml and stats is None:
        raise ConfigError(f"mask score {mask.score!r} needs SML statistics: fit them with `hypood fit-sml` and pass "
                          "--sml-stats, or choose another --mask-score")
    for line in mask_notes(mask) if mask is not None else ():
        note(f"note: {line}")
    with Output(args.out, "--out", kind="folder") as tmp:
        dataset = open_dataset(args.dataset, root)
        if dataset.left_out:
            note(f"note: {left_out_line(dataset)}")
        backend = load_model(args)
        params = {"eta": args.eta, "lam": args.lam, "delta": args.delta}
        with progress(total=len(dataset.samples) * passes(mask), desc=f"hypood eval {args.dataset}",
                      unit="img") as bar:
            evaluate(backend, dataset, names, tmp, params, stats, args.metric_pixels, args.heatmaps, bar,
                     resolution=args.score_resolution, protocol=args.protocol, mask=mask)
    print((Path(args.out) / "results.md").read_text())
    return 0
