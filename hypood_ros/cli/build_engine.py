"""`hypood build-engine`: a TensorRT engine for this GPU from an exported ONNX file, plus its sidecar."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("build-engine", help="build a TensorRT engine (needs TensorRT and a GPU)")
    parser.add_argument("onnx", type=Path)
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", dest="precision", action="store_const", const="fp16")
    precision.add_argument("--fp32", dest="precision", action="store_const", const="fp32")
    precision.add_argument("--int8", dest="precision", action="store_const", const="int8",
                           help="INT8 (with FP16 fallback), calibrated on --calib-images")
    parser.add_argument("--calib-images", type=Path, default=None, help="in-distribution frames for INT8")
    parser.add_argument("--calib-cache", type=Path, default=None, help="calibration cache file (read and written)")
    parser.add_argument("--workspace", type=float, default=4.0, help="builder workspace limit in GiB")
    parser.add_argument("--timing-cache", type=Path, default=None, help="timing cache file (read and written)")
    parser.add_argument("--out", required=True, type=Path, help="e.g. engines/uem_vitb14_reg_fp16.engine")
    parser.set_defaults(func=run, precision="fp16")


def run(args: argparse.Namespace) -> int:
    from hypood_ros.runtimes.engine_build import build_engine
    from hypood_ros.runtimes.engine_metadata import sidecar_path

    meta = build_engine(args.onnx, args.out, precision=args.precision, workspace_gb=args.workspace,
                        timing_cache=args.timing_cache, calib_images=args.calib_images, calib_cache=args.calib_cache)
    print(f"wrote {args.out} and {sidecar_path(args.out).name} ({meta.precision}, {meta.gpu_name}, "
          f"TensorRT {meta.tensorrt_version})")
    return 0
