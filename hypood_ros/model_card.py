"""The last step of `make demo-model`: measure the trained demo model and ship it with its numbers.

Writes into --out: `model.pt` (the stage-2 checkpoint), `metrics.json` and `README.md` (mIoU on held-out
generated scenes; AP / AUROC / FPR95 of every score on scenes with evaluation-family anomalies, never
used in training, and for comparison on scenes with training-family ones) and `params.yaml` (the node's
score and its threshold, calibrated on the held-out anomaly-free scenes).

    python -m hypood_ros.model_card --model RUN/uem/model.pt --data WORK --out models/demo
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

INPUT = (238, 476)
TRACKS = ("smiyc-anomaly", "smiyc-obstacle")  # network input of the demo (240x480 frames, multiples of 14)


def main(argv=None) -> int:
    from tqdm import tqdm

    from hypood_ros.calibration import calibrate, write_params
    from hypood_ros.evaluation.datasets import open_dataset
    from hypood_ros.evaluation.evaluate import evaluate, select_scores
    from hypood_ros.images import read_image
    from hypood_ros.model import load_checkpoint
    from hypood_ros.pipeline import FramePipeline, PipelineConfig
    from hypood_ros.runtimes import load_backend
    from hypood_ros.training.cityscapes import val_pairs
    from hypood_ros.training.validate import evaluate_miou

    parser = argparse.ArgumentParser(prog="python -m hypood_ros.model_card", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="trained stage-2 checkpoint")
    parser.add_argument("--data", required=True, type=Path,
                        help="folder with cityscapes/ (val split held out), eval-family/ and training-family/")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--score", default="hyperspherical_llr", help="score the node uses")
    parser.add_argument("--target-fpr", type=float, default=0.01, help="fraction of held-out ID pixels flagged")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = load_checkpoint(args.model)
    pairs = val_pairs(args.data / "cityscapes")
    miou = evaluate_miou(model, tqdm(pairs, desc="mIoU", file=sys.stderr), list(INPUT), [140, 140],
                         torch.device("cpu"))
    backend = load_backend(str(args.model), device="cpu", input_hw=INPUT)
    params = {"eta": 1.5, "lam": 1.0, "delta": 0.0}
    names = select_scores("all", False)
    ood = {}
    for family in ("eval-family", "training-family"):
        ood[family] = {}
        for track in TRACKS:
            dataset = open_dataset(track, args.data / family)
            with tqdm(total=len(dataset.samples), desc=f"{family} {track}", file=sys.stderr) as bar:
                ood[family][track] = evaluate(backend, dataset, names, args.data / "results" / family / track,
                                              params, heatmaps=0, progress=bar)
    config = PipelineConfig(score=args.score, eta=params["eta"], lam=params["lam"], delta=params["delta"])
    pipeline = FramePipeline(backend, config)

    def frames():
        for image, _ in pairs:
            yield read_image(image)

    calibration = calibrate(pipeline, frames, args.target_fpr)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.model.resolve() != (args.out / "model.pt").resolve():
        shutil.copyfile(args.model, args.out / "model.pt")
    write_params(args.out / "params.yaml", calibration, config,
                 f"{len(pairs)} held-out generated scenes without anomalies", "models/demo/model.pt")
    meta = {"input_size": list(INPUT), "params": params, "mIoU_heldout": miou, "heldout_images": len(pairs),
            "ood": ood, "node_score": args.score, "threshold": calibration.threshold,
            "threshold_target_fpr": args.target_fpr,
            "note": "generated scenes and a small model trained on them, not the paper's numbers"}
    (args.out / "metrics.json").write_text(json.dumps(meta, indent=2) + "\n")
    lines = ["# Demo model: numbers on generated scenes", "",
             "Trained by `make demo-model` (configs in `config/demo/`): the `tiny` preset, backbone trained from",
             "random weights on generated street scenes (no pretrained DINOv2 exists here; the paper keeps a",
             "pretrained one frozen), then the UEM on the same scenes with generated training-family outliers",
             "pasted in. Generated scenes and a small model: these are not the paper's numbers.", "",
             f"- mIoU on {len(pairs)} held-out generated scenes (input {INPUT[0]}x{INPUT[1]}): {100 * miou:.1f}%",
             f"- node score `{args.score}`, threshold {calibration.threshold:.4g} (flags "
             f"{100 * calibration.flagged_fraction:.2f}% of held-out in-distribution pixels; `params.yaml`)", "",
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
    (args.out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
