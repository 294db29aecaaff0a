"""The node's parameters: one table with types, defaults, ranges and descriptions.

Static parameters are read once at start (model, backend, input); dynamic ones map onto
`PipelineConfig` fields or output toggles and may change while the node runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from hypood_ros.pipeline import OUTPUTS, PipelineConfig
from hypood_ros.scores import SCORES


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    dynamic: bool = False
    range: Optional[Tuple[float, float, float]] = None  # (from, to, step); step 0 = any value


PARAMS: List[Param] = [
    Param("model", "", "model file: checkpoint (.pt), ONNX (.onnx) or TensorRT engine (.engine)"),
    Param("backend", "", "torch | onnxruntime | tensorrt; empty: from the model file's extension"),
    Param("device", "cpu", "cpu or cuda[:N]"),
    Param("fp16", False, "half precision (torch backend on CUDA only)"),
    Param("input_height", 518, "network input height for the torch backend (multiple of 14)", range=(14, 4032, 14)),
    Param("input_width", 1036, "network input width for the torch backend (multiple of 14)", range=(14, 4032, 14)),
    Param("input_type", "raw", "raw: subscribe 'image' (sensor_msgs/Image); compressed: 'image/compressed'"),
    Param("input_qos", "sensor_data", "sensor_data: best effort, keep last 5 (camera drivers' default); "
          "reliable: keep last 1, for large raw frames from reliable publishers"),
    Param("sml_stats", "", "JSON from `hypood fit-sml`; needed only for score 'sml'"),
    Param("diagnostics_period", 1.0, "seconds between /diagnostics messages", range=(0.1, 60.0, 0.0)),
    Param("score", "hyperspherical_llr", "OOD score: " + ", ".join(SCORES), dynamic=True),
    Param("threshold", 0.0, "score above which a pixel is OOD", dynamic=True, range=(-1.0e4, 1.0e4, 0.0)),
    Param("eta", 1.5, "class-weight exponent of the weighted normalized energy", dynamic=True, range=(-5.0, 5.0, 0.0)),
    Param("lam", 1.0, "weight of the hypersphere evidence in the hyperspherical LLR", dynamic=True,
          range=(0.0, 100.0, 0.0)),
    Param("delta", 0.0, "norm re-introduction of delta_max_logit", dynamic=True, range=(0.0, 1.0, 0.0)),
    Param("min_area", 0, "drop mask components smaller than this (pixels)", dynamic=True, range=(0, 10_000_000, 1)),
    Param("opening", 0, "diameter of the morphological opening (pixels, 0 = off)", dynamic=True, range=(0, 101, 1)),
    Param("road_gating", False, "keep only mask components on or next to the predicted road", dynamic=True),
    Param("road_radius", 15, "how far from the road a component may start (pixels)", dynamic=True,
          range=(0, 1000, 1)),
    Param("overlay_alpha", 0.5, "opacity of the mask in the overlay", dynamic=True, range=(0.0, 1.0, 0.0)),
] + [Param(f"publish_{name}", True, f"publish the {name} output", dynamic=True) for name in sorted(OUTPUTS)]

BY_NAME: Dict[str, Param] = {p.name: p for p in PARAMS}
CONFIG_FIELDS = ("score", "threshold", "eta", "lam", "delta", "min_area", "opening", "road_gating", "road_radius",
                 "overlay_alpha")


def descriptor(param: Param) -> ParameterDescriptor:
    kinds = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
    desc = ParameterDescriptor(name=param.name, type=kinds[type(param.default)], description=param.description,
                               read_only=not param.dynamic)
    if param.range is not None:
        lo, hi, step = param.range
        if isinstance(param.default, int):
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=int(step))]
        else:
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=float(step))]
    return desc


def declare_all(node) -> Dict[str, Any]:
    """Declare every parameter (values from --params-file / -p override the defaults); return the values."""
    values = {}
    for param in PARAMS:
        values[param.name] = node.declare_parameter(param.name, param.default, descriptor(param)).value
    return values


def pipeline_config(values: Dict[str, Any]) -> PipelineConfig:
    """Parameter values -> a validated PipelineConfig (raises ConfigError with the reason)."""
    outputs = {name for name in OUTPUTS if values[f"publish_{name}"]}
    return PipelineConfig(outputs=outputs, **{name: values[name] for name in CONFIG_FIELDS})
