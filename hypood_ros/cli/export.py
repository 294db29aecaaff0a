"""`hypood export`: the whole network to ONNX, verified against PyTorch with ONNX Runtime."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a checkpoint to ONNX (named outputs, verified)")
    parser.add_argument("--model", required=True, type=Path, help="project checkpoint (.pt)")
    parser.add_argument("--height", type=int, default=518, help="input height (multiple of 14)")
    parser.add_argument("--width", type=int, default=1036, help="input width (multiple of 14)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--fp16", action="store_true",
                        help="half-precision weights, input and outputs (for GPU runtimes; TensorRT can also "
                             "build fp16 engines from an fp32 export)")
    parser.add_argument("--out", required=True, type=Path)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hypood_ros.model import load_checkpoint
    from hypood_ros.runtimes.export import export_onnx

    model = load_checkpoint(args.model)
    report = export_onnx(model, args.out, args.height, args.width, batch=args.batch, fp16=args.fp16)
    worst = max(report.max_abs.values())
    print(f"wrote {report.path} (input [{args.batch},3,{args.height},{args.width}], "
          f"{'fp16' if args.fp16 else 'fp32'}); ONNX Runtime vs PyTorch max-abs {worst:.2e} "
          f"(tolerance {report.tolerance:.0e})")
    return 0
