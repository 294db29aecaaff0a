"""The JSON sidecar of a compiled engine (TensorRT `.engine` or AOTInductor `.pt2`) or of a quantized
ONNX model (`.onnx`, kind `onnxruntime`), and the checks that refuse a mismatched or altered engine before
its bytes are used.

Compiled engines only run where they were built: a TensorRT engine on its GPU model and TensorRT
version, an AOTInductor package on its device, torch version and (on CPU) instruction set. The sidecar
(`NAME.engine.json`, `NAME.pt2.json`) records that, the SHA-256 of the engine and of its source (ONNX
file or checkpoint), and what is needed to use the engine without its source (input shape, head
parameters). One writer and one reader serve both kinds.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from hypood_ros.errors import BackendError

FORMAT = "hypood_ros.engine"
VERSION = 2  # 2: kind, torch version, device type, CPU target, input dtype, batch range, source_*, classes
KINDS = ("tensorrt", "aoti", "onnxruntime")
_V1_RENAMES = {"onnx_sha256": "source_sha256", "onnx_file": "source_file"}


@dataclass
class EngineMetadata:
    input_shape: List[int]  # [B, 3, H, W]; B is the smallest batch when batch_range is set
    precision: str  # fp32 | fp16 | int8 (TensorRT) | int8-dynamic | int8-static (onnxruntime)
    engine_sha256: str
    build_date: str
    kind: str = "tensorrt"  # tensorrt | aoti | onnxruntime
    tensorrt_version: str = ""
    torch_version: str = ""
    device_type: str = "cuda"  # cuda | cpu
    gpu_name: str = ""
    compute_capability: str = ""  # "8.7"
    machine: str = ""  # x86_64 | aarch64 (AOTInductor packages hold native code for one architecture)
    cpu_isa: str = ""  # vector instruction set the CPU code was compiled for, e.g. "AVX512"
    input_dtype: str = "float32"
    batch_range: List[int] = field(default_factory=list)  # [min, max] for a dynamic batch; empty: fixed
    source_file: str = ""  # the ONNX file (TensorRT) or checkpoint (AOTInductor) it was built from
    source_sha256: str = ""
    build_seconds: float = 0.0
    head: Dict[str, List[float]] = field(default_factory=dict)
    classes: str = ""  # ClassInfo.to_json() of the checkpoint (AOTInductor); empty: the default for K
    format: str = FORMAT
    version: int = VERSION


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
    """The command that rebuilds this engine on the running machine."""
    suffix = Path(str(engine_path)).suffix
    kind = meta.kind if meta else {".pt2": "aoti", ".onnx": "onnxruntime"}.get(suffix, "tensorrt")
    if kind == "onnxruntime":
        model = meta.source_file if meta and meta.source_file else "CHECKPOINT.pt"
        mode = meta.precision.split("-")[-1] if meta and meta.precision.startswith("int8-") else "dynamic"
        calib = " --calib-images DIR" if mode == "static" else ""
        return f"export it again: hypood export --model {model} --int8 {mode}{calib} --out {engine_path} --overwrite"
    if kind == "aoti":
        model = meta.source_file if meta and meta.source_file else "CHECKPOINT.pt"
        size = (f" --input-height {meta.input_shape[2]} --input-width {meta.input_shape[3]}" if meta
                else " --input-height H --input-width W")
        cuda = ""
        if meta and meta.device_type == "cuda":
            cuda = " --device cuda" + (" --fp16" if meta.precision == "fp16" else "")
        return (f"rebuild it on this machine: hypood build-engine --runtime aoti --model {model}{size}{cuda} "
                f"--out {engine_path} --overwrite")
    onnx = meta.source_file if meta and meta.source_file else "MODEL.onnx"
    precision = f"--{meta.precision}" if meta else "--fp16"
    return (f"rebuild it on this machine: hypood build-engine --model {onnx} {precision} --out {engine_path} "
            "--overwrite")


def read_sidecar(engine_path: str | os.PathLike) -> EngineMetadata:
    """The sidecar of an existing engine; a missing engine is reported as such, before its sidecar."""
    engine = Path(engine_path)
    if not engine.exists():
        raise BackendError(f"engine not found: {engine_path}")
    if not engine.is_file():
        raise BackendError(f"{engine_path} is not a file (an engine is one file beside its .json sidecar)")
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise BackendError(f"{engine_path}: metadata sidecar {path.name} is missing; {rebuild_hint(engine_path)}")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"the JSON is a {type(data).__name__}, not an object")
        if data.get("format") != FORMAT:
            raise ValueError("not a hypood_ros engine sidecar")
        if not isinstance(data.get("version", 1), int) or data.get("version", 1) > VERSION:
            raise ValueError(f"sidecar version {data.get('version')} is newer than this package reads ({VERSION})")
        data = {_V1_RENAMES.get(k, k): v for k, v in data.items()}
        known = EngineMetadata.__dataclass_fields__
        meta = EngineMetadata(**{k: v for k, v in data.items() if k in known})
        if meta.kind not in KINDS:
            raise ValueError(f"unknown engine kind {meta.kind!r}")
    except (ValueError, TypeError, OSError) as exc:
        raise BackendError(f"{path}: unreadable engine metadata ({exc}); {rebuild_hint(engine_path)}") from None
    return meta


def check_engine_file(engine_path: str | os.PathLike, meta: EngineMetadata) -> None:
    """The engine bytes are the ones the sidecar describes (catches truncated or swapped files)."""
    if not Path(engine_path).is_file():
        raise BackendError(f"engine not found: {engine_path}")
    if file_sha256(engine_path) != meta.engine_sha256:
        raise BackendError(f"{engine_path}: file does not match its metadata (truncated, corrupt or replaced); "
                           f"{rebuild_hint(engine_path, meta)}")


def verified_bytes(engine_path: str | os.PathLike, meta: EngineMetadata) -> bytes:
    """The engine read once and checked against the sidecar hash: the bytes checked are the bytes used."""
    path = Path(engine_path)
    if not path.is_file():
        raise BackendError(f"engine not found: {path}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.engine_sha256:
        raise BackendError(f"{path}: file does not match its metadata (truncated, corrupt or replaced); "
                           f"{rebuild_hint(path, meta)}")
    return data


def running_machine(device) -> Dict[str, str]:
    """What an AOTInductor package must have been built for to run on `device` (a torch.device)."""
    import torch

    info = {"torch_version": torch.__version__, "device_type": device.type, "machine": platform.machine()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu_name=props.name, compute_capability=f"{props.major}.{props.minor}")
    else:
        info["cpu_isa"] = cpu_isa()
    return info


def cpu_isa() -> str:
    """The vector instruction set inductor compiles CPU code for here ("" where it picks none)."""
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    isa = pick_vec_isa()
    return str(isa).upper() if isa else ""


def incompatibilities(meta: EngineMetadata, tensorrt_version: str = "", gpu_name: str = "",
                      compute_capability: str = "", torch_version: str = "", device_type: str = "cuda",
                      machine: str = "", cpu_isa: str = "") -> List[str]:
    """How the engine's build target differs from the running machine (empty: it may run here)."""
    problems = []
    if meta.kind == "tensorrt" and meta.tensorrt_version != tensorrt_version:
        problems.append(f"TensorRT {meta.tensorrt_version} (this machine: {tensorrt_version})")
    if meta.kind == "aoti":
        if meta.torch_version != torch_version:
            problems.append(f"torch {meta.torch_version} (this machine: {torch_version})")
        if meta.device_type != device_type:
            problems.append(f"device {meta.device_type} (requested here: {device_type})")
        elif meta.machine != machine:
            problems.append(f"{meta.machine} (this machine: {machine})")
        elif device_type == "cpu" and meta.cpu_isa != cpu_isa:
            problems.append(f"CPU instructions {meta.cpu_isa or 'none'} (this machine: {cpu_isa or 'none'})")
    if device_type == "cuda" and meta.device_type == "cuda" and (
            meta.compute_capability != compute_capability or meta.gpu_name != gpu_name):
        problems.append(f"GPU {meta.gpu_name} sm_{meta.compute_capability.replace('.', '')} "
                        f"(this machine: {gpu_name} sm_{compute_capability.replace('.', '')})")
    return problems


def check_compatible(engine_path, meta: EngineMetadata, tensorrt_version: str = "", gpu_name: str = "",
                     compute_capability: str = "", **running: str) -> None:
    """Refuse an engine built for another machine, with the command that fixes it."""
    problems = incompatibilities(meta, tensorrt_version, gpu_name, compute_capability, **running)
    if problems:
        raise BackendError(f"{engine_path} was built for {' and '.join(problems)}; {rebuild_hint(engine_path, meta)}")


def head_entry(head) -> Dict[str, List[float]]:
    """HeadParams as stored in the sidecar (the same JSON the ONNX metadata carries)."""
    from hypood_ros.head import head_to_dict

    return head_to_dict(head)


def sidecar_head(engine_path, meta: EngineMetadata):
    """HeadParams from the sidecar, validated like the ONNX metadata."""
    from hypood_ros.head import head_from_dict

    return head_from_dict(meta.head, str(sidecar_path(engine_path)))
