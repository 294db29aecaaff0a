"""Two versions of the class-maximum image order (scores/class_max.py), timed in turns in one process.

    python benchmarks/class_max_versions.py --before OLD/hypood_ros/scores/class_max.py [--runs 21]

On a machine whose speed drifts from minute to minute, two separate benchmark runs cannot tell a change of
10-20% from the drift; here the two versions alternate call by call on the same inputs. Per camera size and
per kind of plan (the logits' maximum only: max_logit, uem_llr, sml; with the class scores' maximum:
normalized_max_logit, delta_max_logit): median / minimum process CPU time of one `ClassMaxPlan(...)` plus its
whole-frame `band`, one thread, on the shipped demo model's outputs (`score_resolution.make_inputs("demo")`).
The old file is loaded beside the current one; it must run against the current package's other modules
(`scores/inputs.py`, `scores/interpolation.py`).
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = [(480, 640), (720, 1280), (1080, 1920)]
KINDS = [(False, True, "logits' maximum (max_logit, uem_llr)"),
         (True, False, "class scores' maximum (normalized_max_logit)")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the other version of class_max.py")
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    import torch
    from score_resolution import make_inputs

    from hypood_ros.memory import keep_freed_memory
    from hypood_ros.scores import class_max as after

    keep_freed_memory()
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("class_max_before", args.before)
    before = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(before)
    inputs = make_inputs(kind="demo")
    print("| camera | plan | before ms (median / min) | after ms (median / min) | after/before (median) |")
    print("|---|---|---:|---:|---:|")
    for size in SIZES:
        for class_scores, logit, name in KINDS:
            times = {"before": [], "after": []}
            for module in (before, after):
                module.ClassMaxPlan(inputs, size, class_scores, logit=logit).band((0, size[0]))
            for _ in range(args.runs):
                for key, module in (("before", before), ("after", after)):
                    start = time.process_time()
                    module.ClassMaxPlan(inputs, size, class_scores, logit=logit).band((0, size[0]))
                    times[key].append(1000 * (time.process_time() - start))
            b, a = statistics.median(times["before"]), statistics.median(times["after"])
            print(f"| {size[1]}x{size[0]} | {name} | {b:.1f} / {min(times['before']):.1f} | "
                  f"{a:.1f} / {min(times['after']):.1f} | {a / b:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
