"""The node's parameters: descriptors built from the package's one table (`hypood_ros.defaults`).

Static parameters are read once at start (model, backend, input); dynamic ones map onto
`PipelineConfig` fields or output toggles and may change while the node runs.
"""
from __future__ import annotations

from typing import Any, Dict

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from hypood_ros.defaults import BY_NAME, PARAMS, Param  # noqa: F401 (re-exported for the node)
from hypood_ros.pipeline import OUTPUTS, PipelineConfig

CONFIG_FIELDS = ("score", "score_resolution", "threshold", "eta", "lam", "delta", "min_area", "opening", "road_gating",
                 "road_radius", "overlay_alpha")


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
