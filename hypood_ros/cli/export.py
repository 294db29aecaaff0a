"""`hypood export`: the whole network to ONNX, verified against PyTorch with ONNX Runtime."""
from __future__ import annotations

import argparse

from hypood_ros.cli.parser import add_input_size, add_option, add_overwrite, int_at_least
from hypood_ros.cli.paths import CHECKPOINT_SUFFIXES, Output, model_file

HELP = "export a checkpoint to ONNX (named outputs, verified against PyTorch)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "--model", required=True, metavar="FILE", help="project checkpoint (.pt) to export")
    add_input_size(parser, "input {} of the exported graph (multiple of 14); fixed in the ONNX file")
    add_option(parser, "--batch", type=int_at_least(1), default=1, metavar="N", help="batch size of the graph")
    add_option(parser, "--fp16", action="store_true",
               help="half-precision weights, input and outputs (for GPU runtimes; TensorRT can also build fp16 "
                    "engines from an fp32 export)")
    add_option(parser, "--out", required=True, metavar="FILE", help="ONNX file to write (.onnx)")
    add_overwrite(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hypood_ros.cli.models import input_size
    from hypood_ros.model import load_checkpoint
    from hypood_ros.runtimes.export import export_onnx

    path = model_file(args.model, suffixes=CHECKPOINT_SUFFIXES)
    with Output(args.out, "--out", suffixes=(".onnx",), overwrite=args.overwrite) as tmp:
        height, width = input_size(args, path)  # the checkpoint's recorded size unless one is asked
        model = load_checkpoint(path)
        report = export_onnx(model, tmp, height, width, batch=args.batch, fp16=args.fp16)
    worst = max(report.max_abs.values())
    print(f"wrote {args.out} (input [{args.batch},3,{height},{width}], "
          f"{'fp16' if args.fp16 else 'fp32'}); ONNX Runtime vs PyTorch max-abs {worst:.2e} "
          f"(tolerance {report.tolerance:.0e})")
    return 0
