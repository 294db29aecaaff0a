"""The node's parameters: descriptors built from the package's one table (`hypood_ros.defaults`).

Static parameters are read once at start (model, backend, input, QoS); dynamic ones map onto
`PipelineConfig` fields or output toggles and may change while the node runs. Values given at start
(parameter files, `-p`, launch files) are checked here with one-line reasons: a wrong type or range
stops the node, an integer where a float is declared is taken as the float, and names the table does
not know are reported.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.parameter import Parameter

from hypood_ros.calibration import read_score_thresholds
from hypood_ros.defaults import BY_NAME, GEOMETRY_OUTPUTS, OUTPUTS, PARAMS, Param, check_value
from hypood_ros.node.params_files import foreign_files, unknown_names
from hypood_ros.pipeline import PIPELINE_FIELDS, PipelineConfig
from hypood_ros.topics import camera_names

#: the parameters that are PipelineConfig fields (its one list)
CONFIG_FIELDS = PIPELINE_FIELDS

__all__ = ["BY_NAME", "CONFIG_FIELDS", "PARAMS", "Param", "declare_all", "descriptor", "pipeline_config",
           "prepare_request", "score_change_problem"]


def descriptor(param: Param) -> ParameterDescriptor:
    kinds = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
    text = param.description
    constraints = ""
    if param.choices is not None:
        constraints = "one of: " + ", ".join(repr(c) for c in param.choices)
        text += f" ({constraints})"
    desc = ParameterDescriptor(name=param.name, type=kinds[param.type], description=text,
                               additional_constraints=constraints, read_only=not param.dynamic)
    if param.range is not None:
        lo, hi, step = param.range
        if param.type is int:
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=int(step))]
        else:
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=float(step))]
    return desc


def camera_param_names(cameras) -> List[str]:
    """Every `<camera>.<name>` parameter of `cameras`: the pose each named camera has of its own."""
    from hypood_ros.node.obstacles import POSE_PARAMS

    return [f"{camera}.{name}" for camera in cameras for name in POSE_PARAMS]


def given_values(node) -> Dict[str, Any]:
    """Values given to the node at start: parameter files, `-p` and launch-file parameters.

    rclpy keeps them, already filtered for this node's name, as `_parameter_overrides` (the same
    attribute from Humble to Kilted); declaring reads them from there too.
    """
    return {name: param.value for name, param in getattr(node, "_parameter_overrides", {}).items()}


def declare_all(node, argv: Optional[List[str]] = None) -> Tuple[Dict[str, Any], Dict[str, float], List[str]]:
    """Declare every parameter of the table with its given value.

    Returns the values, the calibrated thresholds per score (`score_thresholds`) and warnings for the log
    (`argv`: the node's command line, for parameter files addressed to another node).
    """
    given = given_values(node)
    warnings = foreign_files(argv or [], node.get_fully_qualified_name())
    if isinstance(given.get("cameras"), (list, tuple)):  # a YAML list of names: the table's string form
        given["cameras"] = ",".join(camera_names(given["cameras"]))
    # each camera's own parameters (`front.camera_height`) are declared with its channel (node/cameras.py)
    own = set(camera_param_names(camera_names(given.get("cameras", ""))))
    unknown = unknown_names(name for name in given if name not in own)
    if unknown:
        warnings.append(f"ignored parameters the node does not have: {', '.join(unknown)}")
    path = check_value(BY_NAME["score_thresholds"], given.get("score_thresholds", ""))
    contrast = check_value(BY_NAME["local_contrast"], given.get("local_contrast", BY_NAME["local_contrast"].default))
    thresholds = read_score_thresholds(path, contrast) if path else {}
    score = given.get("score", BY_NAME["score"].default)
    if "threshold" not in given and score in thresholds:
        given["threshold"] = thresholds[score]
    values = {}
    for param in PARAMS:
        value = check_value(param, given.get(param.name, param.default))
        values[param.name] = node.declare_parameter(param.name, value, descriptor(param), ignore_override=True).value
    return values, thresholds, warnings


def prepare_request(params: List[Parameter], current: Mapping[str, Any], thresholds: Mapping[str, float],
                    thresholds_contrast: Optional[float] = None) -> List[Parameter]:
    """Before validation: integers for float parameters become floats (`ros2 param set /hypood threshold 1`),
    and a score change without a threshold takes the new score's calibrated one when there is one, provided
    the local contrast after the request is the one the thresholds hold for (`thresholds_contrast`; None:
    any)."""
    out = []
    for param in params:
        spec = BY_NAME.get(param.name) or BY_NAME.get(param.name.rpartition(".")[2])  # a camera's own `front.x`
        if spec is not None and spec.type is float and param.type_ == Parameter.Type.INTEGER:
            param = Parameter(param.name, Parameter.Type.DOUBLE, float(param.value))
        out.append(param)
    names = {p.name: p.value for p in out}
    new = names.get("score")
    contrast = names.get("local_contrast", current.get("local_contrast"))
    if thresholds_contrast is not None and contrast != thresholds_contrast:
        thresholds = {}
    if new is not None and new != current["score"] and "threshold" not in names and new in thresholds:
        out.append(Parameter("threshold", Parameter.Type.DOUBLE, thresholds[new]))
    return out


def score_change_problem(current: Mapping[str, Any], params: List[Parameter]) -> Optional[str]:
    """Why a request may not change the score or the local contrast: a threshold means nothing on another
    score's scale, nor on the score against its surroundings (`local_contrast`) and back."""
    names = {p.name: p.value for p in params}
    if "threshold" in names:
        return None
    new = names.get("score")
    if new is not None and new != current["score"]:
        return (f"changing score from {current['score']} to {new} needs a threshold for {new} in the same request "
                f"(set both with set_parameters_atomically, or list {new} in the score_thresholds file)")
    contrast = names.get("local_contrast")
    if contrast is not None and float(contrast) != float(current["local_contrast"]):
        return (f"changing local_contrast from {current['local_contrast']} to {contrast} needs a threshold calibrated "
                "for it in the same request (`hypood calibrate --local-contrast`; set both with "
                "set_parameters_atomically)")
    return None


def pipeline_config(values: Dict[str, Any]) -> PipelineConfig:
    """Parameter values -> a validated PipelineConfig (raises ConfigError with the reason)."""
    outputs = {name for name in OUTPUTS if values[f"publish_{name}"]}
    if any(values[f"publish_{name}"] for name in GEOMETRY_OUTPUTS):
        outputs |= {"mask", "score"}  # the obstacle outputs are made from them, published or not
    outputs |= {name for name in ("labels", "mask") if values.get(f"publish_compressed_{name}")}
    return PipelineConfig(outputs=outputs, **{name: values[name] for name in CONFIG_FIELDS})
