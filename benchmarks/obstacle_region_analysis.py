"""Why the obstacle mask falls short with the demo model: the figures behind docs/OBSTACLES.md's list of reasons.

    python benchmarks/obstacle_region_analysis.py [--scenes 100] [--model CHECKPOINT] [--local-contrast C]

On anomaly-free held-out scenes (seeds 2000+, for thresholds) and generated scenes of both obstacle families
(seeds 900000+), with the demo model at its recorded input size and `normalized_max_logit`:
1. the score inside the *true* road (ground-truth road pixels and the obstacles): share of obstacle pixels
   above the threshold that flags 1% / 2% of the road pixels of the same scenes (with --local-contrast: the
   score minus its local mean inside the true road, `hypood_ros.contrast`; items 2 and 3 use the score);
2. the predicted road region (margin 0): the share of obstacle pixels it holds, and the true classes of the
   in-distribution pixels in it above its own 1% threshold (calibrated on the anomaly-free scenes);
3. the share of obstacle pixels the model labels as a known road user (`roi_drop_known` would remove them).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hypood_ros.classes import default_classes  # noqa: E402
from hypood_ros.contrast import contrast_score  # noqa: E402
from hypood_ros.pipeline import FramePipeline, PipelineConfig  # noqa: E402
from hypood_ros.roi import KNOWN_OBJECTS, road_region  # noqa: E402
from hypood_ros.runtimes import load_backend, resolve_input_size  # noqa: E402
from hypood_ros.synthetic import writers  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--model", default=str(REPO / "models" / "demo" / "model.pt"),
                        help="checkpoint to measure, at the input size it records (default: the demo model)")
    parser.add_argument("--local-contrast", type=float, default=0.0, metavar="C",
                        help="item 1 on the score minus its local mean inside the true road (0: the score)")
    args = parser.parse_args(argv)
    model = Path(args.model)
    backend = load_backend(str(model), device="cpu", input_hw=resolve_input_size(model).hw)
    pipeline = FramePipeline(backend, PipelineConfig(score="normalized_max_logit", outputs={"score", "labels"}))
    names = default_classes(19).names

    def scenes(first, family):
        for seed in range(first, first + args.scenes):
            frame = writers.scene(seed, (240, 480), family, anomalies=2 if family else 0)
            result = pipeline.process(frame.rgb)
            yield frame, result.score, result.labels

    calib = list(scenes(2000, None))
    def on_road(score, road):
        return contrast_score(score, road, args.local_contrast)

    true_road = np.concatenate([on_road(s, f.label == 0)[f.label == 0] for f, s, _ in calib])
    region_vals = np.concatenate([s[road_region(lab, 0)] for _, s, lab in calib])
    t_road = {q: np.quantile(true_road, 1 - q) for q in (0.01, 0.02)}
    t_region = np.quantile(region_vals, 0.99)
    for family in ("evaluation", "training"):
        data = list(scenes(900000, family))
        ood = np.concatenate([f.ood.ravel() for f, _, _ in data])
        score = np.concatenate([s.ravel() for _, s, _ in data])
        road = np.concatenate([(f.label == 0).ravel() for f, _, _ in data])
        valued = np.concatenate([on_road(s, (f.label == 0) | f.ood).ravel() for f, s, _ in data])
        pos, neg = valued[ood], valued[road]
        line = [f"{family} family: inside the true road,"]
        for q in (0.01, 0.02):
            same = np.quantile(neg, 1 - q)  # the threshold of these scenes' own road pixels
            line.append(f"{(pos > same).mean():.0%} of obstacle pixels at {q:.0%} of road pixels flagged"
                        f" ({(pos > t_road[q]).mean():.0%} at the anomaly-free scenes' threshold, which flags "
                        f"{(neg > t_road[q]).mean():.1%} here)")
        print(" ".join(line))
        region = np.concatenate([road_region(lab, 0).ravel() for _, _, lab in data])
        labels = np.concatenate([lab.ravel() for _, _, lab in data])
        truth = np.concatenate([f.label.ravel() for f, _, _ in data])
        print(f"  predicted road region (margin 0) holds {region[ood].mean():.0%} of the obstacle pixels")
        flagged = region & ~ood & (truth != 255) & (score > t_region)
        counts = np.bincount(truth[flagged], minlength=256)[:19]
        shares = {names[k]: f"{v / counts.sum():.0%}" for k, v in enumerate(counts) if v / counts.sum() >= 0.02}
        print(f"  true classes of the in-distribution pixels flagged in it at its 1% threshold: {shares}")
        known = np.isin(labels[ood], KNOWN_OBJECTS)
        car = labels[ood] == 13
        print(f"  obstacle pixels labelled as a road user: {known.mean():.0%} (as car: {car.mean():.0%}); "
              f"the region without road users holds {(region & ~np.isin(labels, KNOWN_OBJECTS))[ood].mean():.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
