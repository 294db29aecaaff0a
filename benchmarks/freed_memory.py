"""Freed memory kept for the next frame (hypood_ros/memory.py) against glibc's defaults: time, page faults and
peak memory per frame of the network and of the scoring step.

    python benchmarks/freed_memory.py [--frames 5] [--presets tiny vits14]

Each case runs in a fresh process (the setting is per process): `kept` calls `keep_freed_memory()` first, as
the node and `hypood` do; `glibc` runs with HYPOOD_KEEP_FREED_MEMORY=0. Per preset (random weights; `tiny` at
280x560, `vits14` at 518x1036, torch fp32, 2 threads) one warm-up forward pass, then --frames passes: median
wall and CPU seconds, minor page faults per frame, and the process's peak resident size (VmHWM) at the end.
`scores`: `score_map` of `hyperspherical_llr` (all classes, in bands) and `normalized_max_logit` (class
maximum) at 1920x1080 from the 518x1036 grid (random logits, K=19, one thread), per call.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CASE = r"""
import json, resource, statistics, sys, time
import torch
from hypood_ros.memory import keep_freed_memory
kept = keep_freed_memory()
what, frames = sys.argv[1], int(sys.argv[2])
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
if what == "scores":
    sys.path.insert(0, "benchmarks")
    from score_resolution import make_inputs
    from hypood_ros.scores import score_map
    torch.set_num_threads(1)
    inputs = make_inputs()
    step = lambda: [score_map(s, inputs, (1080, 1920), "image") for s in ("hyperspherical_llr", "normalized_max_logit")]
else:
    from hypood_ros.model import build_segmentor
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = build_segmentor(what).eval()
    x = torch.randn(1, 3, *((280, 560) if what == "tiny" else (518, 1036)))
    def step():
        with torch.inference_mode():
            model(x)
step()
wall, cpu, fault = [], [], []
for _ in range(frames):
    f0, w0, c0 = faults(), time.perf_counter(), time.process_time()
    step()
    wall.append(time.perf_counter() - w0); cpu.append(time.process_time() - c0); fault.append(faults() - f0)
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({"kept": kept, "wall": statistics.median(wall), "cpu": statistics.median(cpu),
                  "faults": statistics.median(fault), "peak_mib": peak / 1024}))
"""


def run_case(what: str, frames: int, keep: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HYPOOD_KEEP_FREED_MEMORY", None)
    if not keep:
        env["HYPOOD_KEEP_FREED_MEMORY"] = "0"
    out = subprocess.run([sys.executable, "-c", CASE, what, str(frames)], env=env, cwd=REPO, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--presets", nargs="+", default=["tiny", "vits14"])
    args = parser.parse_args()
    print("| case | memory | wall s p50 | CPU s p50 | page faults p50 | peak MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for what in [*args.presets, "scores"]:
        for keep in (False, True):
            r = run_case(what, args.frames, keep)
            label = "kept" if r["kept"] else "glibc defaults"
            print(f"| {what} | {label} | {r['wall']:.3f} | {r['cpu']:.3f} | {r['faults']:.0f} | "
                  f"{r['peak_mib']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
