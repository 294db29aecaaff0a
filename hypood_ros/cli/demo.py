"""`hypood demo`: a generated drive through the real node with the shipped demo model (see hypood_ros/demo.py)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    from hypood_ros.demo import DemoSettings

    d = DemoSettings()
    parser = subparsers.add_parser("demo", help="generated drive -> node over DDS -> pictures, metrics, summary")
    parser.add_argument("--out", type=Path, default=d.out, help=f"output folder (default {d.out})")
    parser.add_argument("--model", type=Path, default=d.model, help="checkpoint (default: the shipped demo model)")
    parser.add_argument("--params-file", type=lambda v: Path(v) if v else None, default=d.params,
                        help="node params YAML (score, threshold); '' for the node's defaults")
    parser.add_argument("--frames", type=int, default=d.frames, help=f"frames of the drive (default {d.frames})")
    parser.add_argument("--seed", type=int, default=d.seed, help="street seed of the drive")
    parser.add_argument("--anomalies", type=int, default=d.anomalies, help="anomalies on the road")
    parser.add_argument("--rate", type=float, default=None,
                        help="replay at this factor of the recorded 10 Hz (default: each frame once answered)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hypood_ros.demo import DemoSettings, run_demo, table
    from hypood_ros.errors import HypoodError

    if args.frames < 2 or args.anomalies < 1:
        raise HypoodError("--frames must be at least 2 and --anomalies at least 1")
    if args.rate is not None and args.rate <= 0:
        raise HypoodError("--rate must be positive")
    result = run_demo(DemoSettings(out=args.out, model=args.model, params=args.params_file, seed=args.seed,
                                   frames=args.frames, anomalies=args.anomalies, rate=args.rate,
                                   progress=not args.no_progress))
    print(table(result))
    return 0
