"""`hypood build-engine`: a compiled engine plus its sidecar. TensorRT (default) from an exported ONNX file;
AOTInductor (`--runtime aoti`) from a project checkpoint, for CPU or CUDA."""
from __future__ import annotations

import argparse
from pathlib import Path

from hypood_ros.errors import HypoodError


def register(subparsers) -> None:
    parser = subparsers.add_parser("build-engine", help="build a TensorRT engine (needs TensorRT and a GPU) or, "
                                   "with --runtime aoti, an AOTInductor package (CPU or CUDA)")
    parser.add_argument("onnx", type=Path, nargs="?", help="exported ONNX file (TensorRT)")
    parser.add_argument("--runtime", choices=("tensorrt", "aoti"), default="tensorrt",
                        help="tensorrt: engine from ONNX; aoti: .pt2 package from --model (loading one runs its "
                             "native code: load only packages you built)")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", dest="precision", action="store_const", const="fp16",
                           help="TensorRT default; aoti: CUDA only")
    precision.add_argument("--fp32", dest="precision", action="store_const", const="fp32", help="aoti default")
    precision.add_argument("--int8", dest="precision", action="store_const", const="int8",
                           help="INT8 (with FP16 fallback), calibrated on --calib-images (TensorRT)")
    parser.add_argument("--calib-images", type=Path, default=None, help="in-distribution frames for INT8")
    parser.add_argument("--calib-cache", type=Path, default=None, help="calibration cache file (read and written)")
    parser.add_argument("--workspace", type=float, default=4.0, help="builder workspace limit in GiB")
    parser.add_argument("--timing-cache", type=Path, default=None, help="timing cache file (read and written)")
    aoti = parser.add_argument_group("AOTInductor (--runtime aoti)")
    aoti.add_argument("--model", type=Path, default=None, help="project checkpoint (.pt)")
    aoti.add_argument("--height", type=int, default=518, help="input height (multiple of 14)")
    aoti.add_argument("--width", type=int, default=1036, help="input width (multiple of 14)")
    aoti.add_argument("--device", default="cpu", help="cpu or cuda[:N]: where the package will run")
    aoti.add_argument("--batch", type=int, default=1, help="batch size (the smallest one with --max-batch)")
    aoti.add_argument("--max-batch", type=int, default=0, help="largest batch: any batch in --batch..--max-batch runs")
    parser.add_argument("--out", required=True, type=Path,
                        help="e.g. engines/uem_vitb14_reg_fp16.engine or engines/uem_vitb14_reg_cpu.pt2")
    parser.set_defaults(func=run, precision=None)


def run(args: argparse.Namespace) -> int:
    from hypood_ros.runtimes.engine_metadata import sidecar_path

    if args.runtime == "aoti":
        return run_aoti(args)
    if args.onnx is None:
        raise HypoodError("give the ONNX file to build from (or --runtime aoti --model CHECKPOINT)")
    from hypood_ros.runtimes.engine_build import build_engine

    meta = build_engine(args.onnx, args.out, precision=args.precision or "fp16", workspace_gb=args.workspace,
                        timing_cache=args.timing_cache, calib_images=args.calib_images, calib_cache=args.calib_cache)
    print(f"wrote {args.out} and {sidecar_path(args.out).name} ({meta.precision}, {meta.gpu_name}, "
          f"TensorRT {meta.tensorrt_version})")
    return 0


def run_aoti(args: argparse.Namespace) -> int:
    from hypood_ros.runtimes.aoti_build import build_aoti
    from hypood_ros.runtimes.engine_metadata import sidecar_path

    if args.model is None or args.onnx is not None:
        raise HypoodError("--runtime aoti builds from a checkpoint: give --model CHECKPOINT.pt (no ONNX file)")
    if args.precision == "int8":
        raise HypoodError("--int8 is a TensorRT option; AOTInductor packages are fp32, or fp16 on CUDA")
    meta = build_aoti(args.model, args.out, args.height, args.width, device=args.device,
                      fp16=args.precision == "fp16", batch=args.batch, max_batch=args.max_batch)
    target = meta.gpu_name if meta.device_type == "cuda" else f"{meta.machine} {meta.cpu_isa}".strip()
    print(f"wrote {args.out} and {sidecar_path(args.out).name} ({meta.precision}, {meta.device_type}: {target}, "
          f"torch {meta.torch_version}, built in {meta.build_seconds:.1f} s)")
    return 0
