"""Building a TensorRT engine from an exported ONNX file (TensorRT 10 builder API) + its sidecar."""
from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path
from typing import List, Optional

import torch

from hypood_ros.errors import BackendError
from hypood_ros.runtimes.engine_metadata import EngineMetadata, file_sha256, head_entry, write_sidecar
from hypood_ros.runtimes.export import read_onnx_head
from hypood_ros.runtimes.tensorrt_backend import import_tensorrt, running_gpu


def calibration_batches(folder: Path, shape, limit: int = 64) -> List[torch.Tensor]:
    """ImageNet-normalized CUDA batches from an image folder, preprocessed as the pipeline does."""
    from hypood_ros.images import is_image_file, read_image
    from hypood_ros.preprocess import preprocess

    files = sorted(p for p in folder.iterdir() if is_image_file(p))[:limit]
    if not files:
        raise BackendError(f"no calibration images in {folder}")
    frames = [read_image(p) for p in files]
    b = shape[0]
    return [preprocess([f], shape[2:], "cuda").repeat(b, 1, 1, 1) for f in frames]


def make_calibrator(trt, batches: List[torch.Tensor], cache_file: Path):
    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.index = 0

        def get_batch_size(self) -> int:
            return int(batches[0].shape[0])

        def get_batch(self, names):
            if self.index >= len(batches):
                return None
            self.index += 1
            return [int(batches[self.index - 1].data_ptr())]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache) -> None:
            cache_file.write_bytes(bytes(cache))

    return EntropyCalibrator()


def make_progress_monitor(trt):
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class Progress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            print(f"  {phase_name} ({num_steps} steps)", file=sys.stderr, flush=True)

        def step_complete(self, phase_name, step) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name) -> None:
            pass

    return Progress()


def build_engine(onnx_path: str | os.PathLike, out: str | os.PathLike, precision: str = "fp16",
                 workspace_gb: float = 4.0, timing_cache: Optional[str | os.PathLike] = None,
                 calib_images: Optional[str | os.PathLike] = None, calib_cache: Optional[str | os.PathLike] = None
                 ) -> EngineMetadata:
    onnx_path, out = Path(onnx_path), Path(out)
    if not onnx_path.is_file():
        raise BackendError(f"ONNX model not found: {onnx_path}")
    head = read_onnx_head(onnx_path)
    trt = import_tensorrt()
    if not torch.cuda.is_available():
        raise BackendError("building a TensorRT engine needs a CUDA device")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"{onnx_path}: TensorRT cannot parse the ONNX graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if calib_images is None:
            raise BackendError("--int8 needs --calib-images DIR (in-distribution frames)")
        config.set_flag(trt.BuilderFlag.INT8)
        shape = tuple(network.get_input(0).shape)
        cache = Path(calib_cache) if calib_cache else out.with_suffix(".calib")
        config.int8_calibrator = make_calibrator(trt, calibration_batches(Path(calib_images), shape), cache)
    cache_path = Path(timing_cache) if timing_cache else None
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path and cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=True)
    monitor = make_progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see the messages above)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(bytes(serialized))
    os.replace(tmp, out)
    if cache_path:
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    gpu_name, capability = running_gpu(torch.device("cuda"))
    meta = EngineMetadata(
        kind="tensorrt", tensorrt_version=trt.__version__, device_type="cuda", gpu_name=gpu_name,
        compute_capability=capability, input_shape=[int(d) for d in network.get_input(0).shape], precision=precision,
        source_sha256=file_sha256(onnx_path), engine_sha256=file_sha256(out),
        build_date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        head=head_entry(head), source_file=str(onnx_path),
    )
    write_sidecar(out, meta)
    return meta
