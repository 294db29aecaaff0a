"""Frames per second of `hypood fleet` on Ray (1 and 2 workers) against the plain sequential loop, and memory
per worker.

Generated drives (the demo's size, 480x240) through the shipped demo model at its params file's input size
(280x560). All three runs process the same frames with one torch thread per worker; model loading is left out
of the rates and shown apart (`setup s`). CPU seconds: the sequential loop's process time, and the sum of the
workers' process time over their bags for Ray. Prints one table.

    python benchmarks/fleet.py [--bags 4] [--frames 20]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bags", type=int, default=4)
    parser.add_argument("--frames", type=int, default=20, help="frames per bag")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    import ray

    from hypood_ros.fleet.engine import EngineSettings, run_fleet
    from hypood_ros.fleet.report import FleetOutput
    from hypood_ros.fleet.work import BagWorker, ModelSpec, Options, plan_jobs, run_sequential
    from hypood_ros.synthetic import writers

    root = Path(tempfile.mkdtemp(prefix="fleet_bench_"))
    for i in range(args.bags):
        writers.write_bag(root / f"drive{i}", writers.drive(500_000 + i, args.frames))
    options = Options(ModelSpec(str(REPO / "models/demo/model.pt"), (str(REPO / "models/demo/params.yaml"),)),
                      threads=1)
    jobs, _ = plan_jobs([str(root / f"drive{i}") for i in range(args.bags)], "/front/image_raw", options)
    frames = sum(j.frames for j in jobs)
    rows = []

    start = time.perf_counter()
    worker = BagWorker(options)
    setup = time.perf_counter() - start
    cpu, start = time.process_time(), time.perf_counter()
    run_sequential(jobs, options, worker)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("sequential loop", 1, frames / wall, cpu, setup, f"{rss:.0f} (this process)"))
    base_rate = frames / wall
    del worker

    for n in args.workers:
        out = FleetOutput(root / f"out{n}")
        run = run_fleet(jobs, [], options, out, EngineSettings(workers=n, num_cpus=max(args.workers)),
                        log=lambda _: None)
        assert run.processed_frames == frames and not run.failures, run.failures
        memory = sorted({w["pid"]: w["max_rss_mb"] for s in run.summaries for w in s["workers"]}.values())
        cpu = sum(s["cpu_seconds"] for s in run.summaries)
        rows.append((f"Ray, {n} worker(s)", n, frames / run.seconds, cpu, run.setup_seconds,
                     " / ".join(f"{m:.0f}" for m in memory)))
        if ray.is_initialized():
            ray.shutdown()

    print(f"# hypood fleet: {args.bags} bags x {args.frames} frames (480x240, demo model at 280x560, 1 torch "
          f"thread per worker); {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("| run | workers | frames/s | vs sequential x workers | CPU s | setup s | peak memory per worker MB |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, n, rate, cpu, setup, memory in rows:
        print(f"| {name} | {n} | {rate:.2f} | {100 * rate / (base_rate * n):.0f}% | {cpu:.1f} | {setup:.1f} | "
              f"{memory} |")


if __name__ == "__main__":
    main()
