"""int8 ONNX models for the CPU: ONNX Runtime's quantization of an exported fp32 graph, recorded twice.

`dynamic`: int8 weights, activations quantized per call from their own range (no data needed).
`static`: int8 weights and activations with ranges fixed from calibration frames (QDQ format), the
frames preprocessed exactly as the pipeline does. The precision and how it was made go into the ONNX
metadata (`PRECISION_KEY`), and the file gets the engine sidecar (`NAME.onnx.json`, kind `onnxruntime`)
with its SHA-256: the ONNX Runtime backend refuses a quantized file whose sidecar is missing or does not
match it, as it would an engine.
"""
from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import logging
import os
import platform
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch

from hypood_ros.errors import BackendError, UsageError
from hypood_ros.runtimes.base import INPUT_NAME, OUTPUT_NAMES
from hypood_ros.runtimes.precision import PRECISION_KEY

MODES = ("dynamic", "static")
#: The layers quantized per mode. Only products with a weight (MatMulConstBOnly): the attention's products of
#: two activations stay in float. Dynamic leaves convolutions in float too: ONNX Runtime's ConvInteger ran
#: ViT-S/14 at 518x1036 slower than fp32 on the CPU (9.5 against 6.2 CPU s per frame), static's QLinearConv
#: does not.
OP_TYPES = {"dynamic": ["MatMul", "Gemm"], "static": ["MatMul", "Gemm", "Conv"]}


def precision_name(mode: str) -> str:
    return f"int8-{mode}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _FrameReader:
    """ONNX Runtime's calibration reader over RGB frames, preprocessed as the pipeline preprocesses them.

    It serves one range of frames at a time (`set_range`): with a stride of one frame, ONNX Runtime merges
    the activations' ranges after every frame and holds one frame's activations, not all of them."""

    def __init__(self, frames: List[np.ndarray], size: Tuple[int, int]) -> None:
        self._frames, self._size = frames, size
        self._next, self._end = 0, len(frames)

    def __len__(self) -> int:
        return len(self._frames)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, end_index

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        from hypood_ros.preprocess import preprocess

        if self._next >= self._end:
            return None
        self._next += 1
        return {INPUT_NAME: preprocess([self._frames[self._next - 1]], self._size, "cpu").numpy()}


def quantize_onnx(source: str | os.PathLike, out: str | os.PathLike, mode: str,
                  frames: Optional[Callable[[], Iterable[np.ndarray]]] = None, frame_limit: int = 32,
                  calibration: str = "", checkpoint: str | os.PathLike = "") -> Dict[str, object]:
    """Quantize the fp32 ONNX file `source` into `out` (int8, `mode`), add its metadata and write its sidecar.

    `frames()` yields in-distribution RGB frames (static mode; at most `frame_limit` are used);
    `calibration` describes them for the record; `checkpoint` is the file `source` was exported from
    (recorded as the sidecar's source). Returns the record written to the metadata.
    """
    import onnx

    if mode not in MODES:
        raise UsageError(f"int8 mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "static" and frames is None:
        raise UsageError("static int8 needs calibration frames: --calib-images DIR or --calib-bag BAG "
                         "--calib-topic TOPIC (or use --int8 dynamic, which needs none)")
    if mode == "dynamic" and frames is not None:
        raise UsageError("calibration frames apply to --int8 static only (dynamic quantization measures each "
                         "frame's own range)")
    source, out = Path(source), Path(out)
    proto = onnx.load(str(source), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    if PRECISION_KEY in meta:
        raise BackendError(f"{source} is already quantized ({meta[PRECISION_KEY]}); quantize an fp32 export")
    inputs = proto.graph.input
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise BackendError(f"{source}: int8 quantization starts from an fp32 export, not fp16")
    shape = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    record: Dict[str, object] = {"precision": precision_name(mode), "mode": mode, "op_types": OP_TYPES[mode],
                                 "per_channel": True}
    prepared = Path(str(out) + ".prepared.onnx")
    try:
        with _quiet_quantizer():
            _prepare(source, prepared)
            _quantize(prepared, out, mode, frames, frame_limit, shape, record, calibration)
    except (BackendError, UsageError):
        Path(out).unlink(missing_ok=True)
        raise
    except Exception as exc:  # ORT's quantizer raises plain exceptions on graphs it cannot handle
        Path(out).unlink(missing_ok=True)
        raise BackendError(f"{source}: ONNX Runtime could not quantize it ({mode}): {_first_line(exc)}") from None
    finally:
        prepared.unlink(missing_ok=True)
    quantized = onnx.load(str(out))
    kept = {p.key for p in quantized.metadata_props}
    for key, value in list(meta.items()) + [(PRECISION_KEY, json.dumps(record))]:
        if key not in kept:
            entry = quantized.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.save(quantized, str(out))
    write_onnx_sidecar(out, record, shape, Path(checkpoint) if checkpoint else source)
    return record


@contextlib.contextmanager
def _quiet_quantizer():
    """ONNX Runtime's quantizer logs advice through the root logger; the command prints its own summary."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _prepare(source: Path, prepared: Path) -> None:
    """ONNX Runtime's pre-processing: shapes inferred and LayerNorm/GELU fused, so that they stay in float."""
    from onnxruntime.quantization import quant_pre_process

    quant_pre_process(str(source), str(prepared))


def _quantize(source: Path, out: Path, mode: str, frames, frame_limit: int, shape, record: Dict[str, object],
              calibration: str) -> None:
    if mode == "dynamic":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(source), str(out), op_types_to_quantize=OP_TYPES[mode], per_channel=True,
                         weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": True})
        return
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if shape[0] != 1:
        raise UsageError(f"static int8 calibrates a batch-1 graph; this one has batch {shape[0]}")
    chosen = list(itertools.islice(frames(), frame_limit))  # RGB uint8: small beside the activations
    if not chosen:
        raise BackendError(f"no usable calibration frames in {calibration or 'the source given'}")
    reader = _FrameReader(chosen, (shape[2], shape[3]))
    quantize_static(str(source), str(out), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=OP_TYPES[mode],
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    # ranges merged after every frame: memory of one frame's activations, not of all frames'
                    extra_options={"CalibStridedMinMax": 1, "MatMulConstBOnly": True})
    record.update(calibration=calibration, calibration_frames=len(chosen))


def write_onnx_sidecar(path: Path, record: Dict[str, object], shape, source: Path) -> None:
    """The engine sidecar (kind `onnxruntime`) that ties the quantized file's bytes to its precision."""
    from hypood_ros.runtimes.engine_metadata import EngineMetadata, cpu_isa, file_sha256, head_entry, write_sidecar
    from hypood_ros.runtimes.export import read_onnx_head

    head = read_onnx_head(path)
    meta = EngineMetadata(
        input_shape=[int(v) for v in shape], precision=str(record["precision"]), engine_sha256=file_sha256(path),
        build_date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), kind="onnxruntime",
        device_type="cpu", machine=platform.machine(), cpu_isa=cpu_isa(), source_file=str(source),
        source_sha256=file_sha256(source) if source.is_file() else "", head=head_entry(head))
    write_sidecar(path, meta)


def compare_outputs(fp32: str | os.PathLike, quantized: str | os.PathLike, example: torch.Tensor) -> Dict[str, float]:
    """How far the quantized graph lands from the fp32 one on `example`: each output's max-abs difference
    relative to the fp32 output's range, and the share of pixels whose class id changes."""
    from hypood_ros.runtimes.onnxruntime_backend import OnnxRuntimeBackend

    with OnnxRuntimeBackend(fp32) as a, OnnxRuntimeBackend(quantized) as b:
        want, got = a.run(example), b.run(example)
    report = {name: float((got[name] - want[name]).abs().max() / (want[name].max() - want[name].min()).clamp_min(1e-12))
              for name in OUTPUT_NAMES}
    report["class_ids_changed"] = float((got["seg_logits"].argmax(1) != want["seg_logits"].argmax(1)).float().mean())
    return report
