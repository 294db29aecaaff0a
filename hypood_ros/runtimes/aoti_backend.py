"""AOTInductor backend: runs a `.pt2` package built by `hypood build-engine --runtime aoti`.

A package holds compiled native code, and loading it executes that code. So the package is read once,
its SHA-256 checked against the sidecar, the sidecar checked against this machine (torch version,
device, GPU or CPU instruction set), and only those verified bytes are handed to the loader. No Python
model code is needed at load time; head parameters come from the sidecar.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Dict

import torch

from hypood_ros.classes import ClassInfo
from hypood_ros.errors import BackendError
from hypood_ros.runtimes.aoti_build import first_line
from hypood_ros.runtimes.base import OUTPUT_NAMES, Backend
from hypood_ros.runtimes.cuda_graph import replay
from hypood_ros.runtimes.engine_metadata import (
    check_compatible,
    read_sidecar,
    rebuild_hint,
    running_machine,
    sidecar_head,
    sidecar_path,
    verified_bytes,
)


class AOTIBackend(Backend):
    """cuda_graphs: capture the package's run once and replay it per frame (CUDA only); the returned
    tensors are then reused by the next call: consume them before running again."""

    name = "aoti"

    def __init__(self, path: str | os.PathLike, device: str = "cpu", cuda_graphs: bool = False) -> None:
        path = Path(path)
        meta = read_sidecar(path)
        if meta.kind != "aoti":
            raise BackendError(f"{path}: the sidecar describes a {meta.kind} engine, not an AOTInductor package")
        self._device = torch.device(device)
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(f"{path} needs a CUDA device and none is available; {rebuild_hint(path, meta)}")
        data = verified_bytes(path, meta)
        check_compatible(path, meta, **running_machine(self._device))
        try:
            index = self._device.index if self._device.type == "cuda" and self._device.index is not None else -1
            self._model = torch._inductor.aoti_load_package(io.BytesIO(data), run_single_threaded=cuda_graphs,
                                                            device_index=index)
        except Exception as exc:  # the loader raises RuntimeError and friends for packages it cannot use
            raise BackendError(f"{path}: cannot load the AOTInductor package: {first_line(exc)}; "
                               f"{rebuild_hint(path, meta)}") from None
        self._dtype = torch.float16 if meta.input_dtype == "float16" else torch.float32
        self.precision = meta.precision
        self._range = tuple(meta.batch_range) if meta.batch_range else None
        self.dynamic_batch = self._range is not None
        self._shape = tuple(int(d) for d in meta.input_shape)
        self._head = sidecar_head(path, meta).to(self._device)
        if meta.classes:  # class names and colours of the checkpoint the package was built from
            try:
                self._classes = ClassInfo.from_json(meta.classes, int(self._head.weight_norm.shape[0]))
            except ValueError as exc:
                raise BackendError(f"{sidecar_path(path)}: invalid class metadata: {exc}") from None
        self._graph = None
        if cuda_graphs:
            if self._device.type != "cuda":
                raise BackendError("cuda_graphs needs a CUDA device")
            from hypood_ros.runtimes.cuda_graph import capture

            self._static_input = torch.zeros(self._shape, device=self._device, dtype=self._dtype)
            self._graph, self._static_output = capture(self._model, self._static_input)

    @property
    def batch_range(self):
        """The package's batch range; a captured CUDA graph replays its own batch size only."""
        if self._range and self._graph is None:
            return self._range
        return (self._shape[0],) * 2

    def check_input(self, batch: torch.Tensor) -> None:
        super().check_input(batch)
        if self._range and not self._range[0] <= batch.shape[0] <= self._range[1]:
            raise BackendError(f"batch size {batch.shape[0]} is outside the package's range "
                               f"{self._range[0]}..{self._range[1]}")

    @torch.inference_mode()
    def run(self, batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        self.check_input(batch)
        if self._model is None:
            raise BackendError("backend is closed")
        if self._graph is not None:
            return replay(self._graph, self._static_input, self._static_output, batch)
        outputs = self._model(batch.to(self._device, self._dtype).contiguous())
        return {name: outputs[name] for name in OUTPUT_NAMES}

    def close(self) -> None:
        self._model = None
        self._graph = None
