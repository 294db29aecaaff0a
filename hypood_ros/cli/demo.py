"""`hypood demo`: a generated drive through the real node with the shipped demo model, and what it saw.

Steps and outputs: hypood_ros/apps/demo/. The model, the params file and the output folder are checked before any
work. The output folder may be new, empty or an earlier demo's (whose products a new run replaces); a failed or
interrupted run removes what it wrote there, and the folders it made.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import List

from hypood_ros.cli.parser import add_no_progress, add_option, float_in, int_at_least
from hypood_ros.cli.paths import CHECKPOINT_SUFFIXES, existing_file, model_file
from hypood_ros.errors import MissingDependencyError, UsageError
from hypood_ros.folders import missing_folders, nearest_existing, remove_empty

HELP = "a generated drive through the node with the demo model: pictures, metrics, summary"
#: Most anomalies placed along the drive (more crowd a short street).
MAX_ANOMALIES = 20


def configure(parser: argparse.ArgumentParser) -> None:
    from hypood_ros.apps.demo import MODEL_DIR, DemoSettings

    d = DemoSettings()
    add_option(parser, "--out", default=str(d.out), metavar="DIR",
               help="output folder: new, empty, or an earlier demo's, whose products (drive/, outputs/, "
                    "anomaly_frames/, eval/, pictures, summary.json) are replaced")
    add_option(parser, "--model", default=None, metavar="FILE",
               help=f"checkpoint (.pt) run by the node (default: the shipped {_shown(MODEL_DIR / 'model.pt')})")
    add_option(parser, "--params-file", default=None, metavar="FILE",
               help="node params YAML (score, threshold, input size); '' for the node's defaults (default: the "
                    f"shipped {_shown(MODEL_DIR / 'params.yaml')})")
    add_option(parser, "--frames", type=int_at_least(2), default=d.frames, metavar="N", help="frames of the drive")
    add_option(parser, "--seed", type=int_at_least(0), default=d.seed, metavar="N", help="street seed of the drive")
    add_option(parser, "--anomalies", type=_anomalies, default=d.anomalies, metavar="N",
               help=f"evaluation-family anomalies on the road (1 to {MAX_ANOMALIES})")
    add_option(parser, "--rate", type=float_in(0.0, None, low_open=True), default=None, metavar="FACTOR",
               help="replay at this factor of the recorded 10 Hz (default: each frame as soon as the node answered "
                    "the previous one)")
    add_no_progress(parser, help="no progress bars (they draw only on a terminal)")
    parser.set_defaults(func=run)


def _anomalies(text: str) -> int:
    value = int_at_least(1)(text)
    if value > MAX_ANOMALIES:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_ANOMALIES}, got {value}")
    return value


_anomalies.__name__ = "integer"


def _shown(path: Path) -> str:
    """A path of the repository as written from the working folder when inside it, else in full."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def checkpoint(value) -> Path:
    """--model: a readable project checkpoint, loaded once here (as `hypood run` loads it) before any work."""
    from hypood_ros.apps.demo import MODEL_DIR

    path = Path(value)
    if path.is_dir():
        inside = path / "model.pt"
        if inside.is_file():
            raise UsageError(f"--model {path} is a folder; give the checkpoint in it: --model {inside}")
        raise UsageError(f"--model {path} is a folder; it must be a checkpoint file (.pt), such as the shipped "
                         f"{_shown(MODEL_DIR / 'model.pt')}")
    path = model_file(path, suffixes=CHECKPOINT_SUFFIXES)
    from hypood_ros.model import load_checkpoint

    load_checkpoint(path)  # CheckpointError: the one line `hypood run --model` prints for the same file
    return path


def params_file(value):
    """--params-file: an existing YAML whose ros__parameters the node and the evaluator accept; None for ''."""
    from hypood_ros.node.params_files import checked_values

    if not value:
        return None
    path = existing_file(value, "--params-file", (".yaml", ".yml"), "YAML file")
    checked_values(path, f"--params-file {path}")  # the node reports the names it does not know itself
    return path


def output_folder(value) -> Path:
    """--out: not a file, somewhere writable; if it exists, empty or holding only an earlier demo's products."""
    from hypood_ros.apps.demo import PRODUCTS

    path = Path(value)
    if str(value).strip() == "":
        raise UsageError("--out needs a path")
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} is a file; it must be a folder (new, empty or an earlier demo's)")
    if path.is_dir():
        own = set(PRODUCTS) | {name + ".partial" for name in PRODUCTS}
        foreign = sorted(p.name for p in path.iterdir() if p.name not in own)
        if foreign:
            listed = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise UsageError(f"--out {path} holds files that are not the demo's ({listed}); choose a new or empty "
                             "folder, or an earlier demo's")
    anchor = nearest_existing(path)
    if not anchor.is_dir():
        raise UsageError(f"--out {path}: {anchor} is a file, not a folder")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise UsageError(f"--out {path}: cannot write in {anchor} (permission denied)")
    return path


def _remove_products(out: Path, made: List[Path]) -> None:
    from hypood_ros.apps.demo import remove_products

    remove_products(out)
    remove_empty(made)


def run(args: argparse.Namespace) -> int:
    from hypood_ros.apps.demo import MODEL_DIR, DemoSettings, run_demo, table
    from hypood_ros.cli.console import note, progress

    # everything the command line alone can tell, then the checkpoint (a second), before any work
    out = output_folder(args.out)
    params = params_file(MODEL_DIR / "params.yaml" if args.params_file is None else args.params_file)
    model = checkpoint(MODEL_DIR / "model.pt" if args.model is None else args.model)
    from hypood_ros.cli.extras import missing, missing_message

    if missing(["rclpy"]):
        raise MissingDependencyError(missing_message("rclpy", "demo"))
    import hypood_ros.replay.replayer  # noqa: F401 - the ROS side loads before an earlier demo's products are touched
    made = missing_folders(out)  # removed again if the run fails
    try:  # the folder now, so that a place that cannot be written is refused before any work
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_products(out, made)
        raise UsageError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    ok = False
    try:
        settings = DemoSettings(out=out, model=model, params=params, seed=args.seed, frames=args.frames,
                                anomalies=args.anomalies, rate=args.rate)
        result = run_demo(settings, progress, note)  # --no-progress: `hide_progress`, as for every command
        ok = True
    finally:
        if not ok:
            _remove_products(out, made)
    print(table(result))
    return 0
