"""`hypood build-engine`: an engine for this machine from an exported ONNX file, plus its sidecar.

One builder per runtime in BUILDERS (TensorRT today); each takes the parsed options and the temporary
output path, writes the engine there, and returns the line to print.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Dict, Tuple

from hypood_ros.cli.parser import (
    add_input_size,
    add_option,
    add_overwrite,
    add_param,
    add_pixel_limit,
    float_in,
    int_at_least,
    merge_positional,
)
from hypood_ros.cli.paths import Output, existing_file, existing_folder
from hypood_ros.errors import UsageError

HELP = "build a TensorRT engine (ONNX file, GPU) or an AOTInductor package (checkpoint, CPU or CUDA)"


def build_tensorrt(args: argparse.Namespace, out: Path) -> str:
    from hypood_ros.runtimes.engine_build import build_engine

    if args.precision == "int8" and args.calib_images is None:
        raise UsageError("--int8 needs --calib-images DIR (in-distribution frames to calibrate on)")
    calib_cache = Path(args.calib_cache) if args.calib_cache else Path(args.out).with_suffix(".calib")
    meta = build_engine(args.model, out, precision=args.precision or "fp16", workspace_gb=args.workspace,
                        timing_cache=args.timing_cache, calib_images=args.calib_images, calib_cache=calib_cache)
    return f"{meta.precision}, {meta.gpu_name}, TensorRT {meta.tensorrt_version}"


def build_aoti_package(args: argparse.Namespace, out: Path) -> str:
    from hypood_ros.cli.models import input_size
    from hypood_ros.runtimes.aoti_build import build_aoti

    if args.precision == "int8":
        raise UsageError("--int8 is a TensorRT option; AOTInductor packages are fp32, or fp16 on CUDA")
    if args.precision == "fp16" and not args.device.startswith("cuda"):
        raise UsageError("fp16 packages are built for CUDA only (use fp32 on CPU)")
    height, width = input_size(args, args.model)  # the checkpoint's recorded size unless one is asked
    meta = build_aoti(args.model, out, height, width, device=args.device,
                      fp16=args.precision == "fp16", batch=args.batch, max_batch=args.max_batch)
    target = meta.gpu_name if meta.device_type == "cuda" else f"{meta.machine} {meta.cpu_isa}".strip()
    return (f"{meta.precision}, {meta.device_type}: {target}, torch {meta.torch_version}, "
            f"built in {meta.build_seconds:.1f} s")


#: runtime -> (builder, suffixes of the input model, suffixes of the engine file, files written beside it)
BUILDERS: Dict[str, Tuple[Callable[[argparse.Namespace, Path], str], Tuple[str, ...], Tuple[str, ...],
                          Tuple[str, ...]]] = {
    "tensorrt": (build_tensorrt, (".onnx",), (".engine", ".plan"), (".json",)),
    "aoti": (build_aoti_package, (".pt", ".pth"), (".pt2",), (".json",)),
}


def configure(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "--model", required=False, metavar="FILE",
               help="tensorrt: ONNX file from `hypood export`; aoti: project checkpoint (.pt) (required)")
    parser.add_argument("onnx", nargs="?", default=None, help=argparse.SUPPRESS)  # earlier spelling
    add_option(parser, "--runtime", choices=sorted(BUILDERS), default="tensorrt",
               help="tensorrt: engine from ONNX (needs TensorRT and a GPU); aoti: AOTInductor .pt2 package from a "
                    "checkpoint, for CPU or CUDA (loading one runs its native code: load only packages you built)")
    precision = parser.add_mutually_exclusive_group()
    add_option(precision, "--fp16", dest="precision", action="store_const", const="fp16",
               help="FP16 precision (TensorRT's default; aoti: CUDA only)")
    add_option(precision, "--fp32", dest="precision", action="store_const", const="fp32",
               help="FP32 precision (aoti's default)")
    add_option(precision, "--int8", dest="precision", action="store_const", const="int8",
               help="INT8 (with FP16 fallback), calibrated on --calib-images")
    add_option(parser, "--calib-images", default=None, metavar="DIR", help="in-distribution frames for --int8")
    add_option(parser, "--calib-cache", default=None, metavar="FILE",
               help="calibration cache, read and written (default: the engine's name with .calib)")
    add_option(parser, "--workspace", type=float_in(0.0, None, low_open=True), default=4.0, metavar="GIB",
               help="builder workspace limit in GiB")
    add_option(parser, "--timing-cache", default=None, metavar="FILE", help="timing cache file, read and written")
    aoti = parser.add_argument_group("AOTInductor (--runtime aoti)")
    add_input_size(aoti, "input {} of the package (multiple of 14)")
    add_param(aoti, "device", help="cpu or cuda[:N]: where the package will run")
    add_option(aoti, "--batch", type=int_at_least(1), default=1, metavar="N",
               help="batch size (the smallest one with --max-batch)")
    add_option(aoti, "--max-batch", type=int_at_least(0), default=0, metavar="N",
               help="largest batch: any batch in --batch..--max-batch runs (0: only --batch)")
    add_option(parser, "--out", required=True, metavar="FILE",
               help="engine file to write, e.g. engines/uem_vitb14_reg_fp16.engine; its sidecar is FILE.json")
    add_overwrite(parser)
    add_pixel_limit(parser)
    parser.set_defaults(func=run, precision=None)


def run(args: argparse.Namespace) -> int:
    args.model = merge_positional(args.model, args.onnx, "--model", "the ONNX file", "build-engine")
    builder, model_suffixes, suffixes, companions = BUILDERS[args.runtime]
    args.model = existing_file(args.model, "--model", model_suffixes,
                               "ONNX file" if args.runtime == "tensorrt" else "checkpoint file")
    if args.calib_images is not None:
        args.calib_images = existing_folder(args.calib_images, "--calib-images")
    for option in ("calib_cache", "timing_cache"):
        value = getattr(args, option)
        if value is not None and Path(value).is_dir():
            raise UsageError(f"--{option.replace('_', '-')} {value} is a folder; it must be a file")
    with Output(args.out, "--out", suffixes=suffixes, overwrite=args.overwrite, companions=companions) as tmp:
        summary = builder(args, tmp)
    extra = "".join(f" and {Path(str(args.out) + s).name}" for s in companions)
    print(f"wrote {args.out}{extra} ({summary})")
    return 0
