"""Where the class-maximum image order spends its time, against the network order, per camera size.

    python benchmarks/class_max_parts.py [--runs 21] [--scores max_logit,normalized_max_logit]
    HYPOOD_NATIVE_SCORES=0 python benchmarks/class_max_parts.py   # the undecided pixels by PyTorch

For each class-maximum score, one thread, on the shipped demo model's outputs
(`score_resolution.make_inputs("demo")`), median process CPU time in ms of:
- image: `score_map(score, inputs, size, "image")`, the whole scoring step; network: the same at "network";
  image/network is the ratio of the two medians, and in brackets the median of the per-run ratios;
- its parts, timed inside the same image calls: the plan's work on the network grid (winners, margins,
  per-row maps; `ClassMaxPlan.__init__` less the next), the undecided pixels (`_undecided_maxima`: the
  compiled loop, or PyTorch's candidates, tiers and groups, whose calls to `_maxima` are counted as "groups"),
  the band (`ClassMaxPlan.band`: the winners' channels interpolated to the frame, the class ids, the
  undecided pixels written in), and the rest (the score's formula, ||z|| or u_1 - u_0 interpolated).
The image and network calls alternate run by run, so the machine's drift reaches both alike.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = [(480, 640), (720, 1280), (1080, 1920)]
SCORES = "max_logit,uem_llr,normalized_max_logit,delta_max_logit"


class Clock:
    """Wraps methods of a class to add their process CPU time into named totals (outermost call only)."""

    def __init__(self, cls, names):
        self.totals = {name: 0.0 for name in names}
        self.calls = {name: 0 for name in names}
        for name in names:
            setattr(cls, name, self._wrap(name, getattr(cls, name)))

    def _wrap(self, name, fn):
        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.totals[name] += time.process_time() - start
                self.calls[name] += 1
        return timed

    def take(self):
        out = dict(self.totals), dict(self.calls)
        for name in self.totals:
            self.totals[name], self.calls[name] = 0.0, 0
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--scores", default=SCORES)
    args = parser.parse_args()
    import torch
    from score_resolution import make_inputs

    from hypood_ros.memory import keep_freed_memory
    from hypood_ros.scores import class_max
    from hypood_ros.scores.registry import score_map

    keep_freed_memory()
    torch.set_num_threads(1)
    inputs = make_inputs(kind="demo")
    clock = Clock(class_max.ClassMaxPlan, ("__init__", "_undecided_maxima", "_maxima", "band"))
    print(f"undecided pixels by: {'the compiled loop' if class_max.class_max_native.library() else 'PyTorch'}")
    print("| camera | score | image | network | image/network | grid work | undecided pixels (groups) | band | rest "
          "| undecided share |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with torch.inference_mode():
        for size in SIZES:
            for score in args.scores.split(","):
                rows = {key: [] for key in ("image", "network", "ratio", "grid", "undecided", "band", "rest")}
                groups = 0
                for resolution in ("image", "network"):
                    score_map(score, inputs, size, resolution)  # warm-up
                clock.take()
                for _ in range(args.runs):
                    start = time.process_time()
                    score_map(score, inputs, size, "image")
                    image = time.process_time() - start
                    (t, calls) = clock.take()
                    start = time.process_time()
                    score_map(score, inputs, size, "network")
                    rows["network"].append(time.process_time() - start)
                    rows["image"].append(image)
                    rows["ratio"].append(image / rows["network"][-1])
                    rows["grid"].append(t["__init__"] - t["_undecided_maxima"])
                    rows["undecided"].append(t["_undecided_maxima"])
                    rows["band"].append(t["band"])
                    rows["rest"].append(image - t["__init__"] - t["band"])
                    groups = calls["_maxima"]
                ms = {key: 1000 * statistics.median(values) for key, values in rows.items()}
                class_scores = score in ("normalized_max_logit", "delta_max_logit")
                share = class_max.ClassMaxPlan(inputs, size, class_scores, logit=not class_scores).undecided_share
                print(f"| {size[1]}x{size[0]} | {score} | {ms['image']:.1f} | {ms['network']:.1f} | "
                      f"{ms['image'] / ms['network']:.2f}x ({ms['ratio'] / 1000:.2f}x) | {ms['grid']:.1f} | "
                      f"{ms['undecided']:.1f} ({groups}) | {ms['band']:.1f} | {ms['rest']:.1f} | {100 * share:.1f}% |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
