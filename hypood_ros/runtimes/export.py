"""Whole-network ONNX export with named outputs, checked and compared with PyTorch before success.

The linear head's class-weight norms and bias travel in the ONNX metadata (`hypood_ros.head`), so the
ONNX Runtime and TensorRT backends can compute the scores without the checkpoint.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

import torch

from hypood_ros.classes import CLASSES_KEY, default_classes
from hypood_ros.errors import BackendError
from hypood_ros.head import HEAD_KEY, HeadParams, head_from_json, head_to_json
from hypood_ros.runtimes.base import INPUT_NAME, OUTPUT_NAMES

CONFIG_KEY = "hypood_ros.config"
OPSET = 17


@dataclass
class ExportReport:
    path: Path
    max_abs: Dict[str, float]
    tolerance: float

    @property
    def ok(self) -> bool:
        return all(v <= self.tolerance for v in self.max_abs.values())


def export_onnx(model: torch.nn.Module, out: str | os.PathLike, height: int, width: int, batch: int = 1,
                fp16: bool = False, verify: bool = True) -> ExportReport:
    """fp16: weights, activations, input and outputs in half precision (for GPU runtimes); fp32 otherwise."""
    if height % 14 or width % 14 or height <= 0 or width <= 0:
        raise BackendError(f"input size {height}x{width} must be positive multiples of 14")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu().float()
    torch.manual_seed(0)
    example = torch.randn(batch, 3, height, width)
    tmp = out.with_name(out.name + ".tmp")
    try:
        report = _export_to(model, tmp, example, fp16, verify)
    except BaseException:
        model.float()
        tmp.unlink(missing_ok=True)  # never a half-written file beside the destination
        raise
    report.path = out
    os.replace(tmp, out)
    return report


def _export_to(model: torch.nn.Module, tmp: Path, example: torch.Tensor, fp16: bool, verify: bool) -> ExportReport:
    """Export, add the metadata, check and (optionally) compare with PyTorch, all at `tmp`."""
    import onnx

    traced = model.half() if fp16 else model
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about Python ints taken from shapes
        torch.onnx.export(traced, (example.to(torch.float16 if fp16 else torch.float32),), str(tmp),
                          input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), opset_version=OPSET, dynamo=False)
    model.float()
    proto = onnx.load(str(tmp))
    classes = getattr(model, "classes", None) or default_classes(int(model.head_params().weight_norm.shape[0]))
    for key, value in ((HEAD_KEY, head_to_json(model.head_params())), (CONFIG_KEY, json.dumps(model.config)),
                       (CLASSES_KEY, classes.to_json())):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    report = ExportReport(tmp, {}, 5e-2 if fp16 else 1e-4)
    if verify:
        report.max_abs = compare_with_torch(model, tmp, example)
        if not report.ok:
            raise BackendError(f"exported graph disagrees with PyTorch: max-abs {report.max_abs} > {report.tolerance}")
    return report


def compare_with_torch(model: torch.nn.Module, onnx_path, example: torch.Tensor) -> Dict[str, float]:
    from hypood_ros.runtimes.onnxruntime_backend import OnnxRuntimeBackend

    with torch.no_grad():
        want = model.float()(example)
    with OnnxRuntimeBackend(onnx_path) as backend:
        got = backend.run(example)
    return {name: float((got[name].float() - want[name]).abs().max()) for name in OUTPUT_NAMES}


def read_onnx_head(path: str | os.PathLike) -> HeadParams:
    """Head parameters from an exported ONNX file without loading the weights."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise BackendError(f"{path}: not a readable ONNX file: {exc}") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    if HEAD_KEY not in meta:
        raise BackendError(f"{path}: no '{HEAD_KEY}' metadata; export it with `hypood export`")
    return head_from_json(meta[HEAD_KEY], str(path))
