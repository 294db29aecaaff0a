"""The JSON sidecar of a TensorRT engine, and the check that refuses a mismatched engine early.

TensorRT engines only run on the GPU model and TensorRT version they were built with. The sidecar
(`NAME.engine.json`) records both, plus what is needed to use the engine without its ONNX file.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from hypood_ros.errors import BackendError

FORMAT = "hypood_ros.engine"


@dataclass
class EngineMetadata:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.7"
    input_shape: List[int]
    precision: str  # fp32 | fp16 | int8
    onnx_sha256: str
    engine_sha256: str
    build_date: str
    head: Dict[str, List[float]] = field(default_factory=dict)
    onnx_file: str = ""
    format: str = FORMAT
    version: int = 1


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    return Path(str(engine_path) + ".json")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_sidecar(engine_path: str | os.PathLike, meta: EngineMetadata) -> Path:
    path = sidecar_path(engine_path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(meta), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def rebuild_hint(engine_path, meta: Optional[EngineMetadata] = None) -> str:
    onnx = meta.onnx_file if meta and meta.onnx_file else "model.onnx"
    precision = f"--{meta.precision}" if meta else "--fp16"
    return f"rebuild it on this machine: hypood build-engine {onnx} {precision} --out {engine_path}"


def read_sidecar(engine_path: str | os.PathLike) -> EngineMetadata:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise BackendError(f"{engine_path}: metadata sidecar {path.name} is missing; {rebuild_hint(engine_path)}")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError("not a hypood_ros engine sidecar")
        known = EngineMetadata.__dataclass_fields__
        meta = EngineMetadata(**{k: v for k, v in data.items() if k in known})
    except (ValueError, TypeError) as exc:
        raise BackendError(f"{path}: unreadable engine metadata ({exc}); {rebuild_hint(engine_path)}") from None
    return meta


def check_engine_file(engine_path: str | os.PathLike, meta: EngineMetadata) -> None:
    """The engine bytes are the ones the sidecar describes (catches truncated or swapped files)."""
    if not Path(engine_path).is_file():
        raise BackendError(f"engine not found: {engine_path}")
    if file_sha256(engine_path) != meta.engine_sha256:
        raise BackendError(f"{engine_path}: file does not match its metadata (truncated, corrupt or replaced); "
                           f"{rebuild_hint(engine_path, meta)}")


def check_compatible(engine_path, meta: EngineMetadata, tensorrt_version: str, gpu_name: str,
                     compute_capability: str) -> None:
    """Refuse an engine built for another GPU or TensorRT version, with the command that fixes it."""
    problems = []
    if meta.tensorrt_version != tensorrt_version:
        problems.append(f"TensorRT {meta.tensorrt_version} (this machine: {tensorrt_version})")
    if meta.compute_capability != compute_capability or meta.gpu_name != gpu_name:
        problems.append(f"GPU {meta.gpu_name} sm_{meta.compute_capability.replace('.', '')} "
                        f"(this machine: {gpu_name} sm_{compute_capability.replace('.', '')})")
    if problems:
        raise BackendError(f"{engine_path} was built for {' and '.join(problems)}; {rebuild_hint(engine_path, meta)}")
