"""TensorRT backend (TensorRT 10 Python API): one engine, one execution context, one CUDA stream.

Outputs are bound once to preallocated torch CUDA tensors; `run` enqueues on torch's current stream
and returns those tensors without a host round trip. The engine is checked against its sidecar
before TensorRT sees it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Tuple

import torch

from hypood_ros.errors import BackendError
from hypood_ros.runtimes.base import INPUT_NAME, OUTPUT_NAMES, Backend
from hypood_ros.runtimes.engine_metadata import (
    check_compatible,
    check_engine_file,
    read_sidecar,
    rebuild_hint,
    sidecar_head,
)


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendError("TensorRT is not installed (Jetson: it comes with JetPack; desktop: pip install "
                           "tensorrt); use the onnxruntime or torch backend instead") from None
    return trt


def running_gpu(device: torch.device) -> Tuple[str, str]:
    props = torch.cuda.get_device_properties(device)
    return props.name, f"{props.major}.{props.minor}"


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, path: str | os.PathLike, device: str = "cuda") -> None:
        path = Path(path)
        meta = read_sidecar(path)
        check_engine_file(path, meta)
        self.precision = meta.precision
        trt = import_tensorrt()
        if not torch.cuda.is_available():
            raise BackendError("the TensorRT backend needs a CUDA device")
        self._device = torch.device(device)
        check_compatible(path, meta, trt.__version__, *running_gpu(self._device))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise BackendError(f"{path}: TensorRT could not deserialize the engine; {rebuild_hint(path, meta)}")
        self._engine = engine
        self._context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        if sorted(names) != sorted((INPUT_NAME,) + OUTPUT_NAMES):
            raise BackendError(f"{path}: engine tensors {names} are not {INPUT_NAME} -> {list(OUTPUT_NAMES)}")
        dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
        self._tensors: Dict[str, torch.Tensor] = {}
        for name in names:
            shape = tuple(engine.get_tensor_shape(name))
            dtype = dtypes.get(engine.get_tensor_dtype(name))
            if dtype is None or any(d < 0 for d in shape):
                raise BackendError(f"{path}: tensor {name} has unsupported type or dynamic shape {shape}")
            self._tensors[name] = torch.empty(shape, dtype=dtype, device=self._device)
            self._context.set_tensor_address(name, self._tensors[name].data_ptr())
        self._shape = tuple(self._tensors[INPUT_NAME].shape)
        self._head = sidecar_head(path, meta).to(self._device)

    def run(self, batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        self.check_input(batch)
        self._tensors[INPUT_NAME].copy_(batch, non_blocking=True)
        stream = torch.cuda.current_stream(self._device)
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise BackendError("TensorRT execution failed")
        # The outputs are reused by the next call: callers consume them before running again.
        return {name: self._tensors[name] for name in OUTPUT_NAMES}

    def close(self) -> None:
        self._context = None
        self._engine = None
        self._tensors = {}
