"""Runtime backends (PyTorch, ONNX Runtime, TensorRT, AOTInductor) behind one interface."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from hypood_ros.errors import BackendError
from hypood_ros.runtimes.base import INPUT_NAME, OUTPUT_NAMES, Backend, HeadParams

DEFAULT_INPUT_HW = (518, 1036)  # the network input of a checkpoint that records none
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


@dataclass(frozen=True)
class InputSize:
    """The network input a model runs at and where it came from; `note`: a line for the user, or None."""

    height: int
    width: int
    source: str  # RECORDED, ASKED, DEFAULT or FIXED; "height ..., width ..." where the sides differ
    note: Optional[str] = None

    @property
    def hw(self) -> Tuple[int, int]:
        return self.height, self.width


RECORDED, ASKED, DEFAULT, FIXED = "recorded in the model", "asked", "default", "fixed in the model file"


def resolve_input_size(model: str | os.PathLike, height: int = 0, width: int = 0, backend: Optional[str] = None,
                       engine: str | os.PathLike = "") -> InputSize:
    """The network input for `model`: the one rule of `hypood run`, `eval`, `calibrate`, `export`, `build-engine`
    and the node.

    A side asked for (non-zero) is used as asked; a side left at 0 takes the size the checkpoint records
    (`metadata["input_size"]`, read without building the model), else DEFAULT_INPUT_HW. The note says when an
    asked size differs from the recorded one, or when the checkpoint records none and a default is used.
    ONNX files and engines (`backend` or the extension; not a checkpoint built into `engine`) have their
    input fixed in the file: the size returned is then only what was asked, and the file's own is used.
    """
    asked = (int(height or 0), int(width or 0))
    if engine:  # the package is built from the checkpoint `model` at this size
        checkpoint = Path(model).suffix.lower() in (".pt", ".pth")
    else:
        checkpoint = backend_for_path(model, backend) == "torch"
    if not checkpoint:
        return InputSize(*(a or d for a, d in zip(asked, DEFAULT_INPUT_HW)), FIXED)
    from hypood_ros.model.checkpoint import recorded_input_size

    recorded = recorded_input_size(model)
    sides = [(a, ASKED) if a else (r, RECORDED) if r else (d, DEFAULT)
             for a, r, d in zip(asked, recorded or (0, 0), DEFAULT_INPUT_HW)]
    (h, h_from), (w, w_from) = sides
    source = h_from if h_from == w_from else f"height {h_from}, width {w_from}"
    note = None
    if recorded is not None and any(a and a != r for a, r in zip(asked, recorded)):
        note = f"{model} was trained at {recorded[0]}x{recorded[1]}; running at {h}x{w} as asked"
    elif recorded is None and DEFAULT in (h_from, w_from):
        note = f"{model} does not record the input size it was trained at; running at {h}x{w} ({source})"
    return InputSize(h, w, source, note)


def load_backend(
    path: str | os.PathLike,
    backend: Optional[str] = None,
    device: str = "cpu",
    input_hw: Tuple[int, int] = DEFAULT_INPUT_HW,
    fp16: bool = False,
    cuda_graphs: bool = False,
    bf16: bool = False,
) -> Backend:
    """Open a model file with the backend named, or the one its extension implies.

    input_hw, fp16, bf16 and cuda_graphs apply to the torch backend (cuda_graphs also to aoti); ONNX graphs and
    engines carry their own input size and precision. An AOTInductor package (`.pt2`) holds native code that runs
    when it is loaded: it is loaded only after its bytes match its sidecar's hash, and only from the path given here.
    """
    name = backend_for_path(path, backend)
    if name == "torch":
        from hypood_ros.model import load_checkpoint
        from hypood_ros.runtimes.torch_backend import TorchBackend

        return TorchBackend(load_checkpoint(path), input_hw=input_hw, device=device, fp16=fp16,
                            cuda_graphs=cuda_graphs, bf16=bf16)
    if bf16:
        raise BackendError(f"bf16 applies to checkpoints (.pt) on the torch backend; {Path(path).name} runs in the "
                           "precision it was exported or built with")
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


__all__ = ["BACKENDS", "Backend", "HeadParams", "INPUT_NAME", "InputSize", "OUTPUT_NAMES", "backend_for_path",
           "load_backend", "resolve_input_size"]
