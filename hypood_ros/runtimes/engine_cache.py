"""Engine cache at launch: build the AOTInductor package for a checkpoint when it is missing or stale,
reuse it otherwise.

Stale means: no package or sidecar, package bytes that no longer match the sidecar, a different source
checkpoint (SHA-256), torch version, device (type, GPU, CPU instruction set), input shape, batch range or
precision. `rebuild=True` builds regardless. Used by the node (`engine`, `rebuild_engine` parameters) and
`hypood run --engine`; the only package ever loaded is the one at the path the caller named.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Tuple

import torch

from hypood_ros.errors import BackendError
from hypood_ros.runtimes import DEFAULT_INPUT_HW, load_backend
from hypood_ros.runtimes.aoti_build import SUFFIX, Log, build_aoti, stderr_log
from hypood_ros.runtimes.engine_metadata import file_sha256, incompatibilities, read_sidecar, running_machine


def stale_reasons(engine: Path, checkpoint: Path, height: int, width: int, device: str = "cpu",
                  fp16: bool = False, batch: int = 1, max_batch: int = 0) -> List[str]:
    """Why the package at `engine` cannot serve this request (empty: reuse it)."""
    if not engine.is_file():
        return ["no package yet"]
    try:
        meta = read_sidecar(engine)
    except BackendError as exc:
        return [str(exc).split(";")[0]]
    if meta.kind != "aoti":
        return [f"the sidecar describes a {meta.kind} engine"]
    reasons = []
    if file_sha256(engine) != meta.engine_sha256:
        reasons.append("package bytes do not match the sidecar")
    if meta.source_sha256 != file_sha256(checkpoint):
        reasons.append(f"checkpoint {checkpoint} changed since the build")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendError("device 'cuda' requested but no CUDA device is available")
    reasons += [f"built for {p}" for p in incompatibilities(meta, **running_machine(dev))]
    wanted = [batch, 3, height, width]
    wanted_range = [batch, max_batch] if max_batch and max_batch > batch else []
    if meta.input_shape != wanted or meta.batch_range != wanted_range:
        have = meta.input_shape + ([f"..{meta.batch_range[1]}"] if meta.batch_range else [])
        reasons.append(f"input {have} (wanted {wanted + ([f'..{max_batch}'] if wanted_range else [])})")
    precision = "fp16" if fp16 else "fp32"
    if meta.precision != precision:
        reasons.append(f"precision {meta.precision} (wanted {precision})")
    return reasons


def ensure_engine(checkpoint: str | os.PathLike, engine: str | os.PathLike, height: int, width: int,
                  device: str = "cpu", fp16: bool = False, batch: int = 1, max_batch: int = 0,
                  rebuild: bool = False, log: Optional[Log] = None) -> str:
    """Make `engine` a current package of `checkpoint`; returns 'reused' or 'built'."""
    log = log or stderr_log
    checkpoint, engine = Path(checkpoint), Path(engine)
    if engine.suffix != SUFFIX:
        raise BackendError(f"the engine cache builds AOTInductor packages (*{SUFFIX}), not {engine.name}; "
                           "build TensorRT engines with `hypood build-engine`")
    if checkpoint.suffix not in (".pt", ".pth"):
        raise BackendError(f"the engine cache builds from a checkpoint (.pt), not {checkpoint.name}")
    if not checkpoint.is_file():
        raise BackendError(f"checkpoint not found: {checkpoint} (the engine cache builds from a .pt checkpoint)")
    reasons = ["rebuild requested"] if rebuild else stale_reasons(engine, checkpoint, height, width, device, fp16,
                                                                  batch, max_batch)
    if not reasons:
        log(f"reusing engine {engine} (current for {checkpoint.name}, torch {torch.__version__}, {device})")
        return "reused"
    log(f"building engine {engine}: {'; '.join(reasons)}")
    build_aoti(checkpoint, engine, height, width, device=device, fp16=fp16, batch=batch, max_batch=max_batch, log=log)
    return "built"


def load_or_build(model: str | os.PathLike, engine: str | os.PathLike = "", rebuild_engine: bool = False,
                  log: Optional[Log] = None, backend: Optional[str] = None, device: str = "cpu",
                  input_hw: Tuple[int, int] = DEFAULT_INPUT_HW, fp16: bool = False, cuda_graphs: bool = False,
                  bf16: bool = False):
    """`load_backend(model, ...)`, or with `engine` set: ensure_engine(model -> engine), then run the package."""
    if not engine:
        return load_backend(model, backend=backend, device=device, input_hw=input_hw, fp16=fp16,
                            cuda_graphs=cuda_graphs, bf16=bf16)
    if bf16:
        raise BackendError("bf16 applies to the torch backend; an engine built at start is fp32 on the CPU")
    if backend not in (None, "", "aoti"):
        raise BackendError(f"an engine built at start runs on the aoti backend, not {backend}")
    from hypood_ros.runtimes.aoti_backend import AOTIBackend

    ensure_engine(model, engine, *input_hw, device=device, fp16=fp16, rebuild=rebuild_engine, log=log)
    return AOTIBackend(engine, device=device, cuda_graphs=cuda_graphs)
