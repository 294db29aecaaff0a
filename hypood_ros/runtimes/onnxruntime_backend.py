"""ONNX Runtime backend: CPU everywhere; CUDA / TensorRT execution providers where installed."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from hypood_ros.classes import CLASSES_KEY, ClassInfo
from hypood_ros.errors import BackendError
from hypood_ros.head import HEAD_KEY, head_from_json
from hypood_ros.runtimes.base import INPUT_NAME, OUTPUT_NAMES, Backend
from hypood_ros.runtimes.engine_metadata import EngineMetadata, rebuild_hint

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class OnnxRuntimeBackend(Backend):
    """Runs an exported graph. On CUDA, inputs and outputs stay on the device through IO binding.

    A quantized graph (`hypood export --int8`) is run only with its sidecar, and only when the sidecar's
    hash and precision match the file's bytes and metadata (`check_quantized`); those bytes are the ones
    loaded.
    """

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike, device: str = "cpu", providers: Optional[List[str]] = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise BackendError(f"ONNX model not found: {path}")
        self._device = torch.device(device)
        kind = "cpu" if self._device.type == "cpu" else "cuda"
        wanted = providers or PROVIDERS[kind]
        available = ort.get_available_providers()
        if wanted[0] not in available:
            raise BackendError(f"ONNX Runtime has no {wanted[0]} here (available: {', '.join(available)}); "
                               "install onnxruntime-gpu for CUDA")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: graph-optimizer notes are not for operators
        model, sidecar = check_quantized(path)
        try:
            self._session = ort.InferenceSession(model, sess_options=options,
                                                 providers=[p for p in wanted if p in available])
        except Exception as exc:  # ORT raises its own exception types for corrupt/invalid graphs
            raise BackendError(f"{path}: cannot load ONNX model (corrupt or truncated?): {_first_line(exc)}") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or sorted(o.name for o in outputs) != sorted(OUTPUT_NAMES):
            raise BackendError(f"{path}: expected input '{INPUT_NAME}' and outputs {list(OUTPUT_NAMES)}, got "
                               f"{[i.name for i in inputs]} -> {[o.name for o in outputs]}; "
                               "export with `hypood export`")
        shape = inputs[0].shape
        if not all(isinstance(d, int) for d in shape):
            raise BackendError(f"{path}: input shape {shape} is not static")
        self._shape: Tuple[int, int, int, int] = tuple(shape)
        self._input_dtype = np.float16 if "float16" in inputs[0].type else np.float32
        meta = self._session.get_modelmeta().custom_metadata_map
        from hypood_ros.runtimes.precision import PRECISION_KEY, recorded_precision

        self.precision = recorded_precision(meta, inputs[0].type)
        if sidecar is None and PRECISION_KEY in meta:
            raise BackendError(f"{path}: a quantized model needs its sidecar {path.name}.json beside it; "
                               f"{rebuild_hint(path)}")
        if sidecar is not None and self.precision != sidecar.precision:
            raise BackendError(f"{path}: the file records {self.precision} but its sidecar says "
                               f"{sidecar.precision}; {rebuild_hint(path, sidecar)}")
        if HEAD_KEY not in meta:
            raise BackendError(f"{path}: no '{HEAD_KEY}' metadata; export it with `hypood export`")
        self._head = head_from_json(meta[HEAD_KEY], str(path)).to(self._device)
        if CLASSES_KEY in meta:  # files exported before class metadata existed get the default for K
            try:
                self._classes = ClassInfo.from_json(meta[CLASSES_KEY], int(self._head.weight_norm.shape[0]))
            except ValueError as exc:
                raise BackendError(f"{path}: invalid class metadata: {exc}") from None
        self._path = path

    def run(self, batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        self.check_input(batch)
        if self._session is None:
            raise BackendError("backend is closed")
        if self._device.type == "cpu":
            feed = {INPUT_NAME: batch.detach().cpu().numpy().astype(self._input_dtype, copy=False)}
            values = self._session.run(list(OUTPUT_NAMES), feed)
            return {name: torch.from_numpy(v) for name, v in zip(OUTPUT_NAMES, values)}
        return self._run_bound(batch)

    def _run_bound(self, batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        """IO binding on the GPU: ORT reads the torch input and writes into torch-allocated outputs."""
        torch_dtype = torch.float16 if self._input_dtype == np.float16 else torch.float32
        x = batch.to(self._device, torch_dtype).contiguous()
        index = self._device.index or 0
        binding = self._session.io_binding()
        binding.bind_input(INPUT_NAME, "cuda", index, self._input_dtype, list(x.shape), x.data_ptr())
        outputs = {}
        for out in self._session.get_outputs():
            dtype = torch.float16 if "float16" in out.type else torch.float32
            tensor = torch.empty(tuple(out.shape), dtype=dtype, device=self._device)
            binding.bind_output(out.name, "cuda", index, np.float16 if dtype == torch.float16 else np.float32,
                                list(tensor.shape), tensor.data_ptr())
            outputs[out.name] = tensor
        torch.cuda.current_stream(self._device).synchronize()  # the input must be ready before ORT's stream reads it
        self._session.run_with_iobinding(binding)
        return {name: outputs[name] for name in OUTPUT_NAMES}

    def close(self) -> None:
        self._session = None


def check_quantized(path: Path) -> Tuple[Union[str, bytes], Optional[EngineMetadata]]:
    """(what ONNX Runtime loads, the sidecar): the path of a file without a sidecar, or the bytes of one with
    a sidecar (a quantized export), checked against it."""
    from hypood_ros.runtimes.engine_metadata import read_sidecar, sidecar_path, verified_bytes

    if not sidecar_path(path).exists():
        return str(path), None
    meta = read_sidecar(path)
    if meta.kind != "onnxruntime":
        raise BackendError(f"{path}: its sidecar describes a {meta.kind} engine, not an ONNX model; "
                           f"{rebuild_hint(path)}")
    return verified_bytes(path, meta), meta
