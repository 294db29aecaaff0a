"""`hypood fleet`: a model (and a baseline) over many drive logs, offline and in parallel on Ray.

Every frame (or every n-th) of every bag goes through the frame pipeline the node runs (no DDS, no real
time); the results land in OUT/bags/ as each bag finishes, and OUT/report.md, summary.json and frames.csv
sum them up (`hypood_ros.fleet`). A second run with the same models and options skips the bags already
done; --force redoes them. Without --address a local Ray starts in this process with the machine's cores;
with it, the work goes to an existing cluster (`ray start --head` on one machine, `ray start --address` on
the others).
"""
from __future__ import annotations

import argparse
import glob
from pathlib import Path
from typing import List

from hypood_ros.cli.parser import add_no_progress, add_option, device_name, float_in, int_at_least
from hypood_ros.cli.paths import existing_file, model_file
from hypood_ros.errors import UsageError

HELP = "run a model (and a baseline) over many rosbag2 drive logs on Ray and report per bag and overall"
#: What marks a bag: a rosbag2 folder has metadata.yaml; a file is .mcap or .db3.
BAG_SUFFIXES = (".mcap", ".db3")


def configure(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "bags", nargs="*", metavar="BAG",
               help="bags: rosbag2 folders, .mcap or .db3 files, folders of bags, or quoted globs "
                    "('drives/*.mcap')")
    add_option(parser, "--manifest", action="append", default=[], metavar="FILE",
               help="text file with one bag (or glob) per line; # starts a comment; relative paths are relative "
                    "to the file (repeatable)")
    add_option(parser, "--topic", default="auto",
               help="image topic (Image or CompressedImage); auto: every image topic of each bag")
    add_option(parser, "--model", required=True, metavar="FILE", help="model file: checkpoint (.pt) or ONNX")
    add_option(parser, "--params-file", action="append", default=[], metavar="FILE",
               help="node params YAML of the model (threshold, score, roi, input size, camera pose...; repeatable, "
                    "later files win)")
    add_option(parser, "--baseline", default=None, metavar="FILE",
               help="the model it replaces: mask IoU per frame, components gained and lost, both in the report")
    add_option(parser, "--baseline-params-file", action="append", default=None, metavar="FILE",
               help="params YAML of the baseline (repeatable; default: the --params-file files)")
    add_option(parser, "--every", type=int_at_least(1), default=1, metavar="N", help="every N-th frame of a topic")
    add_option(parser, "--out", required=True, metavar="DIR",
               help="output folder: new, or one of an earlier run (finished bags with the same key are kept)")
    add_option(parser, "--force", action="store_true", help="redo the bags already done in --out")
    add_option(parser, "--address", default=None, metavar="HOST:PORT",
               help="join an existing Ray cluster (`ray start --head` prints it; 'auto': the one on this machine); "
                    "default: a local Ray in this process with the machine's cores")
    add_option(parser, "--workers", type=int_at_least(0), default=0, metavar="N",
               help="workers, each holding the model(s); 0: as many as the cluster's CPUs (GPUs with "
                    "--gpus-per-worker) allow, at most one per bag")
    add_option(parser, "--cpus-per-worker", type=float_in(0.0, None, low_open=True), default=1.0, metavar="N",
               help="CPUs Ray reserves per worker; also its torch threads (rounded, at least 1)")
    add_option(parser, "--gpus-per-worker", type=float_in(0.0), default=0.0, metavar="N",
               help="GPUs per worker, fractions allowed (0.5: two workers share a GPU); with --device cuda")
    add_option(parser, "--device", type=device_name, default="cpu",
               help="cpu, or cuda with --gpus-per-worker (Ray gives each worker its GPU as cuda)")
    add_option(parser, "--top-k", type=int_at_least(0), default=6, metavar="K",
               help="thumbnails of the frames to look at, per bag and overall")
    add_option(parser, "--retries", type=int_at_least(0), default=2, metavar="N",
               help="times a dead worker is restarted and its bag retried")
    add_no_progress(parser)
    parser.set_defaults(func=run)


def _is_bag(path: Path) -> bool:
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or \
        (path.is_file() and path.suffix.lower() in BAG_SUFFIXES)


def expand(entry: str, base: Path = Path(".")) -> List[str]:
    """One bag argument as bag paths: a bag, a folder of bags (not searched deeper), a glob."""
    path = Path(entry) if Path(entry).is_absolute() else base / entry
    if glob.has_magic(entry):
        found = sorted(glob.glob(str(path)))
        if not found:
            raise UsageError(f"{entry}: no file matches the pattern")
        return [b for f in found for b in expand(f)]
    if not path.exists():
        raise UsageError(f"{entry}: no such bag")
    if _is_bag(path):
        return [str(path)]
    if path.is_dir():
        inside = sorted(str(p) for p in path.iterdir() if _is_bag(p))
        if not inside:
            raise UsageError(f"{entry}: neither a bag (no metadata.yaml) nor a folder of bags")
        return inside
    # a file that is not .mcap / .db3: still given to the reader, which reports it if it is no bag
    return [str(path)]


def bag_list(args: argparse.Namespace) -> List[str]:
    entries = [(e, Path(".")) for e in args.bags]
    for manifest in args.manifest:
        path = existing_file(manifest, "--manifest")
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                entries.append((line, path.parent))
    if not entries:
        raise UsageError("no bags given: name bags, folders or globs, or --manifest FILE")
    bags, seen = [], set()
    for entry, base in entries:
        for bag in expand(entry, base):
            key = str(Path(bag).resolve())
            if key not in seen:
                seen.add(key)
                bags.append(bag)
    return bags


def check_out(value: str) -> Path:
    """A new folder, or one that an earlier `hypood fleet` made (never someone's other files)."""
    out = Path(value)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; it must be a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "bags").is_dir():
        raise UsageError(f"--out {out}: the folder has other files and is no earlier `hypood fleet` output; choose "
                         "a new or empty folder")
    return out


def options_from_args(args: argparse.Namespace):
    from hypood_ros.fleet.work import ModelSpec, Options

    params = tuple(str(existing_file(p, "--params-file", (".yaml", ".yml"), "YAML file")) for p in args.params_file)
    model = ModelSpec(str(model_file(args.model)), params)
    baseline = None
    if args.baseline:
        base_params = params if args.baseline_params_file is None else tuple(
            str(existing_file(p, "--baseline-params-file", (".yaml", ".yml"), "YAML file"))
            for p in args.baseline_params_file)
        baseline = ModelSpec(str(model_file(args.baseline, "--baseline")), base_params)
    elif args.baseline_params_file:
        raise UsageError("--baseline-params-file applies to --baseline only")
    device = args.device
    if device.startswith("cuda") and args.gpus_per_worker == 0:
        raise UsageError("--device cuda needs --gpus-per-worker (e.g. 1, or 0.5 for two workers per GPU)")
    if args.gpus_per_worker > 0 and not device.startswith("cuda"):
        raise UsageError("--gpus-per-worker needs --device cuda")
    for spec in (model, baseline):
        if spec is not None:
            spec.values()  # each params file checked as the node checks it, before anything starts
    return Options(model, baseline, every=args.every, device=device, threads=max(1, round(args.cpus_per_worker)),
                   top_k=args.top_k)


def run(args: argparse.Namespace) -> int:
    import ray

    from hypood_ros.cli.console import note, progress
    from hypood_ros.fleet.engine import EngineSettings, run_fleet
    from hypood_ros.fleet.report import FleetOutput
    from hypood_ros.fleet.work import plan_jobs

    bags = bag_list(args)
    out_path = check_out(args.out)
    options = options_from_args(args)
    settings = EngineSettings(address=args.address, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                              gpus_per_worker=args.gpus_per_worker, retries=args.retries, force=args.force)
    jobs, failures = plan_jobs(bags, args.topic, options)
    for bag, reason in failures:
        note(f"failed: {reason}")
    out = FleetOutput(out_path)
    with progress(desc="hypood fleet", unit="frame") as bar:
        result = run_fleet(jobs, failures, options, out, settings, progress=bar, log=note)
    info = {"model": options.model.path, "baseline": options.baseline.path if options.baseline else None,
            "params_files": list(options.model.params_files), "every": options.every, "topic": args.topic,
            "workers": result.workers, "nodes": result.nodes, "address": args.address,
            "cpus_per_worker": args.cpus_per_worker, "gpus_per_worker": args.gpus_per_worker,
            "device": options.device, "ray": ray.__version__, "skipped_bags": result.skipped,
            "processed_frames": result.processed_frames, "seconds": result.seconds,
            "setup_seconds": result.setup_seconds,
            "frames_per_s": result.processed_frames / result.seconds if result.seconds else None,
            "interrupted": result.interrupted, "top_k": args.top_k, "identity": options.identity()}
    summary = out.write_report(result.summaries, result.failures, info)
    total = summary["total"]
    rate = f", {info['frames_per_s']:.1f} frames/s" if info["frames_per_s"] else ""
    print(f"hypood fleet: {total['bags']} bag(s) finished ({result.skipped} already done), {total['failed']} "
          f"failed; {result.processed_frames} frames processed now on {result.workers} worker(s), "
          f"{result.nodes} node(s){rate}")
    for f in summary["failures"]:
        print(f"  failed: {f['error']}")
    print(f"report: {out_path / 'report.md'}  summary: {out_path / 'summary.json'}  frames: "
          f"{out_path / 'frames.csv'}")
    if result.interrupted:
        print(result.interrupted)
        raise KeyboardInterrupt
    return 1 if summary["failures"] else 0
