"""`hypood export`: the whole network to ONNX, verified against PyTorch with ONNX Runtime; optionally int8."""
from __future__ import annotations

import argparse

from hypood_ros.cli.parser import add_input_size, add_option, add_overwrite, int_at_least
from hypood_ros.cli.paths import CHECKPOINT_SUFFIXES, Output, model_file
from hypood_ros.errors import UsageError

HELP = "export a checkpoint to ONNX (named outputs, verified against PyTorch; --int8: quantized for the CPU)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "--model", required=True, metavar="FILE", help="project checkpoint (.pt) to export")
    add_input_size(parser, "input {} of the exported graph (multiple of 14); fixed in the ONNX file")
    add_option(parser, "--batch", type=int_at_least(1), default=1, metavar="N", help="batch size of the graph")
    add_option(parser, "--fp16", action="store_true",
               help="half-precision weights, input and outputs (for GPU runtimes; TensorRT can also build fp16 "
                    "engines from an fp32 export)")
    add_option(parser, "--int8", choices=["dynamic", "static"], default=None,
               help="quantize for ONNX Runtime on the CPU: dynamic (int8 weights, activation ranges per frame, no "
                    "data) or static (int8 weights and activations, ranges from --calib-images or --calib-bag); "
                    "writes the sidecar FILE.json that the ONNX Runtime backend checks")
    add_option(parser, "--calib-images", metavar="DIR", help="--int8 static: folder of in-distribution images")
    add_option(parser, "--calib-bag", metavar="PATH", help="--int8 static: rosbag2 bag of in-distribution frames")
    add_option(parser, "--calib-topic", help="image topic in --calib-bag")
    add_option(parser, "--calib-frames", type=int_at_least(1), default=32, metavar="N",
               help="--int8 static: most calibration frames read")
    add_option(parser, "--out", required=True, metavar="FILE", help="ONNX file to write (.onnx)")
    add_overwrite(parser)
    parser.set_defaults(func=run)


def check_int8_options(args: argparse.Namespace) -> None:
    """Refuse combinations that cannot work, before anything loads."""
    calib = [f"--{n}" for n in ("calib-images", "calib-bag", "calib-topic")
             if getattr(args, n.replace("-", "_")) is not None]
    if args.int8 and args.fp16:
        raise UsageError("--int8 and --fp16 exclude each other (int8 is quantized from an fp32 export)")
    if args.int8 == "static" and not (args.calib_images or args.calib_bag):
        raise UsageError("--int8 static needs calibration frames: --calib-images DIR or --calib-bag BAG --calib-topic "
                         "TOPIC (or --int8 dynamic, which needs none)")
    if calib and args.int8 != "static":
        raise UsageError(f"{calib[0]} applies to --int8 static only")
    if args.calib_images and args.calib_bag:
        raise UsageError("--calib-images and --calib-bag exclude each other: give one source of frames")
    if args.int8 and args.batch != 1:
        raise UsageError("--int8 exports batch 1 graphs (the node's CPU path); leave out --batch")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hypood_ros.cli.models import input_size
    from hypood_ros.model import load_checkpoint
    from hypood_ros.runtimes.engine_metadata import sidecar_path
    from hypood_ros.runtimes.export import export_onnx

    check_int8_options(args)
    path = model_file(args.model, suffixes=CHECKPOINT_SUFFIXES)
    frames, source = None, ""
    if args.int8 == "static":
        from hypood_ros.cli.calibrate import frame_source

        frames, source = frame_source(args, prefix="calib-")
    with Output(args.out, "--out", suffixes=(".onnx",), overwrite=args.overwrite, companions=(".json",)) as tmp:
        height, width = input_size(args, path)  # the checkpoint's recorded size unless one is asked
        model = load_checkpoint(path)
        fp32 = Path(str(tmp) + ".fp32.onnx") if args.int8 else tmp
        report = export_onnx(model, fp32, height, width, batch=args.batch, fp16=args.fp16)
        if args.int8:
            quantized = quantize(args, fp32, tmp, frames, source, path, height, width)
    worst = max(report.max_abs.values())
    if not args.int8:
        sidecar_path(args.out).unlink(missing_ok=True)  # a replaced int8 file's sidecar would refuse this one
    precision = f"int8 {args.int8}" if args.int8 else "fp16" if args.fp16 else "fp32"
    print(f"wrote {args.out} (input [{args.batch},3,{height},{width}], {precision}); ONNX Runtime vs PyTorch "
          f"max-abs {worst:.2e} (tolerance {report.tolerance:.0e})" + (quantized if args.int8 else ""))
    return 0


def quantize(args, fp32, tmp, frames, source, checkpoint, height, width) -> str:
    """The int8 file at `tmp` from the fp32 export `fp32` (removed after); the summary's second half."""
    import numpy as np
    import torch

    from hypood_ros.preprocess import preprocess
    from hypood_ros.runtimes.quantize import compare_outputs, quantize_onnx

    try:
        record = quantize_onnx(fp32, tmp, args.int8, frames, args.calib_frames, source, checkpoint)
        # agreement on a real frame where there is one, else on a seeded noise picture
        first = next(iter(frames()), None) if frames else None
        if first is None:
            first = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        example = preprocess([first], (height, width), "cpu")
        with torch.no_grad():
            agreement = compare_outputs(fp32, tmp, example)
    finally:
        fp32.unlink(missing_ok=True)
    used = f", calibrated on {record['calibration_frames']} frames of {source}" if args.int8 == "static" else ""
    return (f"; int8 vs fp32 on one frame: class ids changed on {agreement['class_ids_changed']:.2%} of pixels, "
            f"largest difference {agreement['seg_logits']:.1%} of the logits' range{used}; sidecar {args.out}.json")
