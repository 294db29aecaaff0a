"""The project's checkpoint format: preset config + state dict, loaded with `weights_only=True`.

A checkpoint is a dict `{"format": FORMAT, "version": 1, "config": {...}, "state_dict": {...},
"metadata": {...}}`. Everything in it is plain data or tensors, so the safe unpickler accepts it.
`metadata["classes"]` holds the class names and colours (`hypood_ros.classes`); checkpoints without it
get the default for their class count. `metadata["input_size"]` is the network input [H, W] (multiples of 14)
the model was trained and calibrated at; `hypood_ros.runtimes.resolve_input_size` makes it the default
everywhere a checkpoint runs. Checkpoints without it run at the table's old default (518x1036).
"""
from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from hypood_ros.classes import ClassInfo
from hypood_ros.errors import CheckpointError

FORMAT = "hypood_ros.segmentor"
VERSION = 1


#: Model files of the other runtimes, by suffix: named as such when given where a checkpoint is read.
OTHER_FORMATS = {".onnx": "an ONNX model (use the onnxruntime backend, or auto)",
                 ".engine": "a TensorRT engine (use the tensorrt backend, or auto)",
                 ".plan": "a TensorRT engine (use the tensorrt backend, or auto)",
                 ".pt2": "an AOTInductor package (use the aoti backend, or auto)"}


def _refusal(exc: Exception) -> str:
    """Our own words for a file the safe unpickler refused (torch's text advises unsafe loading)."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if not found:
        return "not a readable PyTorch checkpoint (corrupt or truncated?): the safe loader cannot parse it"
    return (f"refused by the safe loader: it contains the Python object {found.group(1)}, and unpickling that could "
            "run code from the file; only tensors and plain data are loaded (weights_only=True)")


def read_torch_file(path: str | os.PathLike, mmap: bool = False) -> object:
    """torch.load with the safe unpickler, every failure turned into one CheckpointError line.

    A damaged file can make the unpickler fail in many ways (IndexError, KeyError, struct errors...):
    all of them are a property of the file, not a bug here, so all of them become one line.
    mmap: map the tensors instead of reading them (cheap when only the plain data is wanted; files in
    torch's legacy format, which cannot be mapped, are read).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is empty: {path}")
    other = OTHER_FORMATS.get(path.suffix.lower())
    if other:
        raise CheckpointError(f"{path} is {other}, not a PyTorch checkpoint (.pt); PyTorch reads checkpoints only")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's own notes about the file's format are not for users
            return torch.load(path, map_location="cpu", weights_only=True,
                              mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: {_refusal(exc)}") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the unpickler on damaged bytes
        text = str(exc).strip()
        detail = text.splitlines()[0].split(". ")[0] if text else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupt or truncated?): "
                              f"{type(exc).__name__}: {detail[:200]}") from None


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Strict key/shape check that names the first offending key (load_state_dict lists them all)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing:
        raise CheckpointError(f"{source}: missing key {missing[0]!r} ({len(missing)} missing in all)")
    if unexpected:
        raise CheckpointError(f"{source}: unexpected key {unexpected[0]!r} ({len(unexpected)} unexpected in all)")
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source}: key {key!r} holds a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{source}: shape mismatch for {key!r}: checkpoint {tuple(value.shape)}, "
                f"model {tuple(expected[key].shape)}"
            )


def num_classes(model: nn.Module) -> int:
    """Classes of the segmentation head (rows of its weight)."""
    return int(model.head.weight.shape[0])


INPUT_SIZE = "input_size"  # metadata key of the network input [H, W]


def check_input_size(value: Any, source: str) -> Tuple[int, int]:
    """A recorded input size as (H, W): two positive multiples of 14, else one CheckpointError line."""
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 and v % 14 == 0 for v in value)):
        raise CheckpointError(f"{source}: metadata input_size must be [height, width], two positive multiples of "
                              f"14 (the patch size), got {value!r}")
    return int(value[0]), int(value[1])


def _write(payload: Dict, path: Path) -> Path:
    """torch.save under a temporary name, renamed when complete: never a half-written file under `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(model: nn.Module, path: str | os.PathLike, metadata: Optional[Dict] = None) -> Path:
    """Write atomically so a crash never leaves a half-written file under the final name.

    The class names and colours come from `metadata["classes"]`, else from the model's own (`model.classes`,
    set by `load_checkpoint`), else the default for its class count; they are checked against the head.
    The input size likewise comes from `metadata["input_size"]`, else the model's own (`model.input_size`);
    with neither, none is recorded.
    """
    path = Path(path)
    metadata = dict(metadata or {})
    classes = metadata.get("classes")
    if classes is None and getattr(model, "classes", None) is not None:
        classes = model.classes.to_metadata()
    try:
        metadata["classes"] = ClassInfo.from_metadata(classes, num_classes(model)).to_metadata()
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    size = metadata.pop(INPUT_SIZE, None)
    size = getattr(model, "input_size", None) if size is None else size
    if size is not None:
        metadata[INPUT_SIZE] = list(check_input_size(size, str(path)))
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": metadata,
    }
    return _write(payload, path)


def read_payload(path: str | os.PathLike, mmap: bool = False) -> Dict:
    """The checkpoint's dict after the checks of its format, version and metadata (tensors not checked)."""
    payload = read_torch_file(path, mmap=mmap)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and ("state_dict" in payload or "pos_embed" in payload):
            hint = " (an official DINOv2 or UEM checkpoint? convert it first with `hypood convert`)"
        raise CheckpointError(f"{path}: not a hypood_ros checkpoint{hint}")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r} is not supported "
                              f"(expected {VERSION})")
    metadata = payload.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: checkpoint metadata is a {type(metadata).__name__}, not a mapping")
    if (metadata or {}).get(INPUT_SIZE) is not None:
        check_input_size(metadata[INPUT_SIZE], str(path))
    return payload


def recorded_input_size(path: str | os.PathLike) -> Optional[Tuple[int, int]]:
    """The input size (H, W) the checkpoint records, or None; reads the metadata without building the model
    (the tensors are mapped, not read). CheckpointError for a file that is not a valid checkpoint."""
    size = (read_payload(path, mmap=True).get("metadata") or {}).get(INPUT_SIZE)
    return None if size is None else check_input_size(size, str(path))


def write_input_size(source: str | os.PathLike, out: str | os.PathLike, size) -> Path:
    """The checkpoint `source` written at `out` (the same path is fine) with `size` [H, W] as its recorded
    input size: the configuration, tensors and other metadata are copied from the file unchanged."""
    out = Path(out)
    size = check_input_size(size, str(out))
    payload = read_payload(source)
    payload["metadata"] = {**(payload.get("metadata") or {}), INPUT_SIZE: list(size)}
    return _write(payload, out)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """A `Segmentor` in eval mode from a project checkpoint; CheckpointError on anything unexpected.

    Its `metadata` is the file's, `classes` a ClassInfo and `input_size` the recorded (H, W) or None.
    """
    from hypood_ros.model.segmentor import Segmentor

    payload = read_payload(path)
    config = payload.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: checkpoint has no model configuration")
    try:
        model = Segmentor(**config)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: invalid model configuration: {exc}") from None
    state_dict = payload.get("state_dict")
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: checkpoint has no state_dict")
    check_state_dict(model, state_dict, str(path))
    model.load_state_dict(state_dict, strict=True)
    model.metadata = dict(payload.get("metadata") or {})
    try:
        model.classes = ClassInfo.from_metadata(model.metadata.get("classes"), num_classes(model))
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    size = model.metadata.get(INPUT_SIZE)
    model.input_size = None if size is None else check_input_size(size, str(path))
    return model.to(map_location).eval()
