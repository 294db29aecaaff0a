"""The last step of `make demo-model`: measure the trained demo model and ship it with its numbers.

Writes into --out: `model.pt` (the stage-2 checkpoint, its metadata recording the input size measured and
calibrated at here; weights unchanged), `metrics.json` and `README.md` (mIoU on held-out
generated scenes; AP / AUROC / FPR95 of every score on scenes with evaluation-family anomalies, never
used in training, and for comparison on scenes with training-family ones) and `params.yaml` (the node's
score and its threshold, calibrated on the held-out anomaly-free scenes). The README's hand-written part,
from its "## This copy" heading on, is kept below the new numbers.

With `--input-sizes` the network input is chosen here, among the candidates, by the node score's road AP on
the training-family scenes: the evaluation family stays out of every choice.

    python -m hypood_ros.apps.model_card --model RUN/uem/model.pt --data WORK --out models/demo
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

INPUT = (238, 476)  # network input when the model records none: the demo's 240x480 frames, multiples of 14
TRACKS = ("smiyc-anomaly", "smiyc-obstacle")


def input_size(text: str):
    """'HxW' -> (H, W), both multiples of 14."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HxW, e.g. 280x560") from None
    if h <= 0 or w <= 0 or h % 14 or w % 14:
        raise argparse.ArgumentTypeError(f"{text!r}: both sides must be positive multiples of 14")
    return h, w


def choose_input_size(model: Path, data: Path, score: str, candidates, params):
    """The candidate whose `score` has the best AP on the training-family scenes' road (SMIYC obstacle
    layout), and every candidate's AP."""
    from tqdm import tqdm

    from hypood_ros.evaluation.datasets import open_dataset
    from hypood_ros.evaluation.evaluate import evaluate
    from hypood_ros.runtimes import load_backend

    dataset = open_dataset("smiyc-obstacle", data / "training-family")
    sweep = {}
    for size in candidates:
        backend = load_backend(str(model), device="cpu", input_hw=size)
        with tqdm(total=len(dataset.samples), desc=f"input {size[0]}x{size[1]}", file=sys.stderr) as bar:
            result = evaluate(backend, dataset, [score], data / "results" / "input-sizes" / f"{size[0]}x{size[1]}",
                              params, heatmaps=0, progress=bar)
        sweep[f"{size[0]}x{size[1]}"] = result[score]["AP"]
    best = max(candidates, key=lambda hw: sweep[f"{hw[0]}x{hw[1]}"])
    return best, sweep


def main(argv=None) -> int:
    from tqdm import tqdm

    from hypood_ros.calibration import calibrate, write_params
    from hypood_ros.evaluation.datasets import open_dataset
    from hypood_ros.evaluation.evaluate import evaluate, select_scores
    from hypood_ros.evaluation.segmentation import confusion
    from hypood_ros.evaluation.segmentation import miou as miou_of
    from hypood_ros.images import read_image
    from hypood_ros.model import load_checkpoint
    from hypood_ros.model.checkpoint import write_input_size
    from hypood_ros.pipeline import FramePipeline, PipelineConfig
    from hypood_ros.runtimes import load_backend
    from hypood_ros.training.cityscapes import read_label, val_pairs

    parser = argparse.ArgumentParser(prog="python -m hypood_ros.apps.model_card", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="trained stage-2 checkpoint")
    parser.add_argument("--data", required=True, type=Path,
                        help="folder with cityscapes/ (val split held out), eval-family/ and training-family/")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--score", default="hyperspherical_llr", help="score the node uses")
    parser.add_argument("--target-fpr", type=float, default=0.01,
                        help="fraction of the held-out ID pixels inside the region of interest flagged (raw)")
    parser.add_argument("--roi", default="road", help="region of interest of the shipped mask (hypood_ros.roi)")
    parser.add_argument("--roi-margin", type=int, default=3, help="pixels off the road region's border")
    parser.add_argument("--local-contrast", type=float, default=0.0,
                        help="the shipped mask thresholds the score minus its local mean in the region, sigma this "
                             "fraction of the frame's height (hypood_ros.contrast; 0: the score itself)")
    parser.add_argument("--opening", type=int, default=0, help="opening of the shipped mask (pixels)")
    parser.add_argument("--min-area", type=int, default=0, help="smallest component of the shipped mask (pixels)")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--input-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                       help="network input (multiples of 14); frames are resized to it, as in the node (default: the "
                            f"size the model records, else {INPUT[0]} {INPUT[1]})")
    sizes.add_argument("--input-sizes", type=input_size, nargs="+", default=None, metavar="HxW",
                       help="candidate inputs: the one with the node score's best road AP on the training family")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    recorded = load_checkpoint(args.model).input_size  # refuses a file that is not a project checkpoint first
    size = tuple(args.input_size or recorded or INPUT)
    pairs = val_pairs(args.data / "cityscapes")
    params = {"eta": 1.5, "lam": 1.0, "delta": 0.0}
    sweep = None
    if args.input_sizes:
        size, sweep = choose_input_size(args.model, args.data, args.score, args.input_sizes, params)
    backend = load_backend(str(args.model), device="cpu", input_hw=size)
    # mIoU the way the node labels a frame: resized to the input, labels at the frame's size
    labeller = FramePipeline(backend, PipelineConfig(**params, outputs=frozenset({"labels"})))
    matrix = 0
    for image, label in tqdm(pairs, desc="mIoU", file=sys.stderr):
        labels = labeller.process(read_image(image)).labels
        matrix = matrix + confusion(labels.astype("int64"), read_label(label), 19)
    miou = float(miou_of(matrix)[0])
    names = select_scores("all", False)
    ood = {}
    for family in ("eval-family", "training-family"):
        ood[family] = {}
        for track in TRACKS:
            dataset = open_dataset(track, args.data / family)
            with tqdm(total=len(dataset.samples), desc=f"{family} {track}", file=sys.stderr) as bar:
                ood[family][track] = evaluate(backend, dataset, names, args.data / "results" / family / track,
                                              params, heatmaps=0, progress=bar)
    # the shipped mask: score, region and filters chosen on the training family (benchmarks/obstacle_mask.py)
    config = PipelineConfig(score=args.score, eta=params["eta"], lam=params["lam"], delta=params["delta"],
                            roi=args.roi, roi_margin=args.roi_margin, local_contrast=args.local_contrast,
                            opening=args.opening, min_area=args.min_area)
    pipeline = FramePipeline(backend, config)

    def frames():
        for image, _ in pairs:
            yield read_image(image)

    calibration = calibrate(pipeline, frames, args.target_fpr)
    args.out.mkdir(parents=True, exist_ok=True)
    # the shipped copy records the input size everything here was measured and calibrated at (metadata only)
    write_input_size(args.model, args.out / "model.pt", size)
    write_params(args.out / "params.yaml", calibration, config,
                 f"{len(pairs)} held-out generated scenes without anomalies", "models/demo/model.pt", size, mask=True)
    meta = {"input_size": list(size), "input_size_sweep": sweep, "params": params, "mIoU_heldout": miou,
            "heldout_images": len(pairs),
            "ood": ood, "node_score": args.score, "threshold": calibration.threshold,
            "threshold_target_fpr": args.target_fpr,
            "mask": {"roi": args.roi, "roi_margin": args.roi_margin, "local_contrast": args.local_contrast,
                     "opening": args.opening, "min_area": args.min_area,
                     "region_pixels_flagged_raw": calibration.flagged_fraction},
            "note": "generated scenes and a small model trained on them, not the paper's numbers"}
    (args.out / "metrics.json").write_text(json.dumps(meta, indent=2) + "\n")
    lines = ["# Demo model: numbers on generated scenes", "",
             "Trained by `make demo-model` (configs in `config/demo/`): the `tiny` preset, backbone trained from",
             "random weights on generated street scenes (no pretrained DINOv2 exists here; the paper keeps a",
             "pretrained one frozen), then the UEM on the same scenes with generated training-family outliers",
             "pasted in. Generated scenes and a small model: these are not the paper's numbers.", "",
             f"- mIoU on {len(pairs)} held-out generated scenes (input {size[0]}x{size[1]}): {100 * miou:.1f}%",
             f"- node score `{args.score}`, threshold {calibration.threshold:.4g} (flags "
             f"{100 * calibration.flagged_fraction:.2f}% of the held-out in-distribution pixels inside the region "
             f"of interest `{args.roi}`, margin {args.roi_margin} px"
             + (f", the score minus its local mean there (sigma {args.local_contrast:g} x the frame's height)"
                if args.local_contrast else "")
             + f", before the opening of {args.opening} px; "
             "`params.yaml`)", "",
             "AP / AUROC / FPR95 in %; *whole*: every pixel scored (SMIYC anomaly-track layout), *road*: only",
             "the road and the obstacles on it (SMIYC obstacle-track layout).", "",
             "| score | evaluation family, whole | evaluation family, road | training family, whole | "
             "training family, road |", "|---|---:|---:|---:|---:|"]

    def cell(m):
        return f"{100 * m['AP']:.1f} / {100 * m['AUROC']:.1f} / {100 * m['FPR95']:.1f}"

    for name in names:
        lines.append(f"| {name} | " + " | ".join(cell(ood[f][t][name]) for f in ("eval-family", "training-family")
                                                   for t in TRACKS) + " |")
    lines += ["", "Evaluation family (animals, tyres, textured debris): never used in training. Training family",
              "(boxes, barrels, sacks, planks, suitcases): the kinds pasted as outliers in stage 2, placed here in",
              "unseen scenes. 100 scenes each (`hypood generate smiyc --seed 900000`), every registry score through",
              "`hypood eval`'s evaluator at the input size above."]
    if sweep:
        lines += ["", f"Input size chosen among {len(sweep)} candidates by the AP of `{args.score}` on the road of the",
                  "training-family scenes (the evaluation family plays no part in the choice):", "",
                  "| input | " + " | ".join(sweep) + " |", "|---|" + "---:|" * len(sweep),
                  f"| `{args.score}` AP % | " + " | ".join(f"{100 * ap:.1f}" for ap in sweep.values()) + " |"]
    card = "\n".join(lines) + "\n"
    (args.out / "README.md").write_text(card + kept_notes(args.out / "README.md"))
    print(card, end="")
    return 0


NOTES = "## This copy"  # the README's hand-written part begins here; a new card keeps it


def kept_notes(readme: Path) -> str:
    """The hand-written notes of an earlier card (from NOTES on), to stay below the regenerated numbers."""
    try:
        text = readme.read_text()
    except OSError:
        return ""
    at = text.find("\n" + NOTES + "\n")
    return "\n" + text[at + 1:] if at >= 0 else ""


if __name__ == "__main__":
    sys.exit(main())
