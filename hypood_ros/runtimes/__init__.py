"""Runtime backends (PyTorch, ONNX Runtime, TensorRT, AOTInductor) behind one interface."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple

from hypood_ros.errors import BackendError
from hypood_ros.runtimes.base import INPUT_NAME, OUTPUT_NAMES, Backend, HeadParams

DEFAULT_INPUT_HW = (518, 1036)
_EXTENSIONS = {".pt": "torch", ".pth": "torch", ".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt",
               ".pt2": "aoti"}
BACKENDS = ("torch", "onnxruntime", "tensorrt", "aoti")


def backend_for_path(path: str | os.PathLike, backend: Optional[str] = None) -> str:
    if backend:
        return backend
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise BackendError(f"cannot tell the backend of {path!s} from its extension; known: {', '.join(_EXTENSIONS)}")
    return _EXTENSIONS[suffix]


def load_backend(
    path: str | os.PathLike,
    backend: Optional[str] = None,
    device: str = "cpu",
    input_hw: Tuple[int, int] = DEFAULT_INPUT_HW,
    fp16: bool = False,
    cuda_graphs: bool = False,
) -> Backend:
    """Open a model file with the backend named, or the one its extension implies.

    input_hw, fp16 and cuda_graphs apply to the torch backend (cuda_graphs also to aoti); ONNX graphs and engines
    carry their own input size. An AOTInductor package (`.pt2`) holds native code that runs when it is loaded:
    it is loaded only after its bytes match its sidecar's hash, and only from the path given here.
    """
    name = backend_for_path(path, backend)
    if name == "torch":
        from hypood_ros.model import load_checkpoint
        from hypood_ros.runtimes.torch_backend import TorchBackend

        return TorchBackend(load_checkpoint(path), input_hw=input_hw, device=device, fp16=fp16,
                            cuda_graphs=cuda_graphs)
    if name == "onnxruntime":
        from hypood_ros.runtimes.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, device=device)
    if name == "tensorrt":
        from hypood_ros.runtimes.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(path, device=device if device != "cpu" else "cuda")
    if name == "aoti":
        from hypood_ros.runtimes.aoti_backend import AOTIBackend

        return AOTIBackend(path, device=device, cuda_graphs=cuda_graphs)
    raise BackendError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "HeadParams", "INPUT_NAME", "OUTPUT_NAMES", "backend_for_path", "load_backend"]
