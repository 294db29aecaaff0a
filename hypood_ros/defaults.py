"""Every user-facing parameter of the package, once: name, type, default, range, allowed values, help.

`PipelineConfig`, the node's declared parameters, the CLI options, `config/hypood.yaml` and the launch
files all take their defaults from this table (a test checks that they agree). ROS-free.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from hypood_ros.errors import ConfigError
from hypood_ros.roi import ROI_MODES
from hypood_ros.runtimes import DEFAULT_INPUT_HW
from hypood_ros.scores import SCORE_RESOLUTIONS, SCORES

#: Outputs of the frame pipeline, each with a `publish_<name>` toggle on the node.
OUTPUTS: Tuple[str, ...] = ("color", "labels", "mask", "overlay", "score")
#: Outputs of the obstacle geometry (camera_info + pose), each with a `publish_<name>` toggle on the node.
GEOMETRY_OUTPUTS: Tuple[str, ...] = ("obstacles", "grid", "markers")


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    dynamic: bool = False  # may change while the node runs
    range: Optional[Tuple[float, float, float]] = None  # (from, to, step); step 0 = any value in between
    choices: Optional[Tuple[str, ...]] = None  # allowed values of a string parameter

    @property
    def type(self) -> type:
        return type(self.default)


PARAMS: List[Param] = [
    Param("model", "", "model file: checkpoint (.pt), ONNX (.onnx), TensorRT engine (.engine) or AOTInductor "
          "package (.pt2)"),
    Param("backend", "", "torch | onnxruntime | tensorrt | aoti; empty: from the model file's extension",
          choices=("", "torch", "onnxruntime", "tensorrt", "aoti")),
    Param("engine", "", "AOTInductor package (.pt2) of the checkpoint in 'model': built at start when missing or "
          "stale (checkpoint, torch version, device, input size), reused otherwise, then run; empty: run 'model'"),
    Param("rebuild_engine", False, "build 'engine' at start even when it is current"),
    Param("device", "cpu", "cpu, cuda or cuda:N (checked at start: an unknown or absent device is refused)"),
    Param("fp16", False, "half precision (torch backend on CUDA only)"),
    Param("bf16", False, "bfloat16 autocast (torch backend on a CPU with bf16 instructions: AVX-512 BF16, AMX or Arm "
          "BF16; refused elsewhere); int8 comes from the model file (`hypood export --int8`)"),
    Param("input_height", 0, "network input height for a checkpoint (multiple of 14); 0: the height the checkpoint "
          f"records (its metadata input_size), else {DEFAULT_INPUT_HW[0]}", range=(0, 4032, 14)),
    Param("input_width", 0, "network input width for a checkpoint (multiple of 14); 0: the width the checkpoint "
          f"records (its metadata input_size), else {DEFAULT_INPUT_HW[1]}", range=(0, 4032, 14)),
    Param("input_type", "raw", "raw: subscribe 'image' (sensor_msgs/Image); compressed: 'image/compressed'",
          choices=("raw", "compressed")),
    Param("input_qos", "sensor_data", "QoS reliability of the image subscription: sensor_data (best effort, as "
          "camera drivers publish) or reliable (matches only reliable publishers, such as `hypood replay`; carries "
          "large raw frames that best effort loses with default DDS settings)", choices=("sensor_data", "reliable")),
    Param("input_depth", 5, "QoS history depth of the image subscription (how many frames wait for the network is "
          "frame_queue)", range=(1, 1000, 1)),
    Param("output_reliability", "reliable", "QoS reliability of the image outputs: reliable (recorders lose "
          "nothing) or best_effort", choices=("reliable", "best_effort")),
    Param("output_depth", 30, "QoS history depth of each image output: samples kept for reliable readers that "
          "have not acknowledged them yet (30 = one second at 30 Hz)", range=(1, 1000, 1)),
    Param("live_camera", False, "header stamps come from this machine's clock (a live camera): /diagnostics "
          "also reports the stamp -> publish latency (always with use_sim_time)"),
    Param("sml_stats", "", "JSON from `hypood fit-sml`; needed only for score 'sml'"),
    Param("score_thresholds", "", "YAML of calibrated thresholds per score (`score: threshold`, or a params file "
          "from `hypood calibrate`): a score change without a threshold takes it from here"),
    Param("diagnostics_period", 1.0, "seconds between /diagnostics messages", range=(0.1, 60.0, 0.0)),
    Param("score", "hyperspherical_llr", "OOD score (formulas: docs/SCORES.md)", dynamic=True, choices=tuple(SCORES)),
    Param("score_resolution", "image", "image: interpolate the network outputs to the camera size, then score "
          "(the official order); network: score on the network grid, then upsample the score (faster for the "
          "scores that need all classes; on the CPU about the same for the class-maximum ones)",
          dynamic=True, choices=SCORE_RESOLUTIONS),
    Param("threshold", 0.0, "score above which a pixel is OOD", dynamic=True, range=(-1.0e4, 1.0e4, 0.0)),
    Param("eta", 1.5, "class-weight exponent of the weighted normalized energy", dynamic=True, range=(-5.0, 5.0, 0.0)),
    Param("lam", 1.0, "weight of the hypersphere evidence in the hyperspherical LLR", dynamic=True,
          range=(0.0, 100.0, 0.0)),
    Param("delta", 0.0, "norm re-introduction of delta_max_logit", dynamic=True, range=(0.0, 1.0, 0.0)),
    Param("min_area", 0, "drop mask components smaller than this (pixels, 0 = off)", dynamic=True,
          range=(0, 10_000_000, 1)),
    Param("opening", 0, "diameter of the morphological opening (pixels, 0 = off)", dynamic=True, range=(0, 101, 1)),
    Param("roi", "road", "region of interest of the obstacle mask (docs/OBSTACLES.md): none (the whole picture); road "
          "(the drivable region: the extent of the road reaching the picture's lower part, obstacles on it included); "
          "corridor (the space ahead from camera geometry: needs camera_info and the camera pose, else road); "
          "road_corridor (both)", dynamic=True, choices=ROI_MODES),
    Param("roi_margin", 3, "pixels taken off the road region's border, where class borders score high", dynamic=True,
          range=(0, 100, 1)),
    Param("roi_drop_known", False, "take pixels labelled person, rider or vehicle out of the road region",
          dynamic=True),
    Param("local_contrast", 0.0, "the mask thresholds the score minus its local mean inside the region of interest, "
          "a Gaussian-weighted mean with this sigma as a fraction of the frame's height (docs/OBSTACLES.md); 0: the "
          "score itself. The threshold holds for the value it was calibrated with", dynamic=True,
          range=(0.0, 1.0, 0.0)),
    Param("ego_mask", "", "image file of the pixels the vehicle itself covers in this camera (bonnet, mounts; "
          "nonzero = vehicle, resized to the frame): never part of the mask's region; empty: none"),
    Param("corridor_half_width", 1.5, "half width of the corridor ahead (metres, roi corridor / road_corridor)",
          dynamic=True, range=(0.1, 50.0, 0.0)),
    Param("corridor_min_range", 2.0, "the corridor starts this far ahead of base_frame (metres; the vehicle's own "
          "front)", dynamic=True, range=(0.0, 100.0, 0.0)),
    Param("corridor_height", 1.0, "height of the corridor above the road (metres): an obstacle up to this tall lies "
          "inside it with its whole body", dynamic=True, range=(0.05, 10.0, 0.0)),
    Param("overlay_alpha", 0.5, "opacity of the mask in the overlay", dynamic=True, range=(0.0, 1.0, 0.0)),
] + [Param(f"publish_{name}", True, f"publish the {name} output", dynamic=True) for name in OUTPUTS] + [
    # Obstacles on the road (hypood_ros/geometry): camera_info + camera pose -> ood/obstacles, ood/grid, ood/markers
    Param("base_frame", "base_link", "vehicle frame of the obstacle outputs; its z = 0 plane is the road"),
    Param("pose_source", "auto", "camera pose from tf (tf2_ros), from the camera_* parameters, or auto: tf when "
          "tf2_ros is installed, else parameters", choices=("auto", "tf", "parameters")),
    Param("camera_height", 1.5, "camera above the road in base_frame (metres; pose_source parameters)", dynamic=True,
          range=(0.01, 100.0, 0.0)),
    Param("camera_x", 0.0, "camera forward offset in base_frame (metres)", dynamic=True, range=(-100.0, 100.0, 0.0)),
    Param("camera_y", 0.0, "camera left offset in base_frame (metres)", dynamic=True, range=(-100.0, 100.0, 0.0)),
    Param("camera_roll", 0.0, "camera roll about its forward axis (radians)", dynamic=True, range=(-3.2, 3.2, 0.0)),
    Param("camera_pitch", 0.0, "camera pitch, positive looks down (radians)", dynamic=True, range=(-1.6, 1.6, 0.0)),
    Param("camera_yaw", 0.0, "camera yaw, positive looks left (radians)", dynamic=True, range=(-3.2, 3.2, 0.0)),
    Param("camera_info_tolerance", 0.05, "largest stamp difference between an image and its camera_info (seconds)",
          range=(0.0, 1.0e6, 0.0)),
    Param("image_rectified", False, "the image is already rectified: use camera_info P and no distortion"),
    Param("odom_tolerance", 0.2, "largest stamp difference between an image and the odometry used for the grid "
          "(seconds)", range=(0.0, 1.0e6, 0.0)),
    Param("max_range", 40.0, "obstacles whose ground contact is farther are dropped and counted (metres)",
          dynamic=True, range=(1.0, 1000.0, 0.0)),
    Param("grid_size", 80.0, "side of the local grid around the vehicle (metres)", range=(1.0, 1000.0, 0.0)),
    Param("grid_resolution", 0.2, "grid cell size (metres)", range=(0.01, 10.0, 0.0)),
    Param("grid_hit", 0.85, "log-odds added to a cell with an obstacle contact", dynamic=True, range=(0.01, 10.0, 0.0)),
    Param("grid_miss", -0.4, "log-odds added to a cell of road seen free", dynamic=True, range=(-10.0, 0.0, 0.0)),
    Param("grid_decay", 0.9, "fraction of the evidence kept per frame", dynamic=True, range=(0.0, 1.0, 0.0)),
    Param("grid_occupied", 1.2, "log-odds at or above which a cell is occupied", dynamic=True, range=(0.0, 10.0, 0.0)),
    Param("grid_free", -1.0, "log-odds at or below which a cell is free", dynamic=True, range=(-10.0, 0.0, 0.0)),
] + [Param(f"publish_{name}", True, f"publish ood/{name} (needs camera_info)", dynamic=True)
     for name in GEOMETRY_OUTPUTS]

# Many cameras, one model (hypood_ros/node/cameras.py; docs/NODE.md, "Many cameras")
PARAMS += [
    Param("cameras", "", "camera names, separated by commas or spaces (a YAML list also works): each gets "
          "<name>/image, <name>/camera_info, its outputs under <name>/ and its pose as <name>.camera_* parameters; "
          "empty: one camera on the topics without a prefix"),
    Param("batch_window", 0.01, "seconds a waiting frame waits for the other cameras' frames, so that they share "
          "one forward pass (0: never wait; frames that arrived while the network ran share the next pass anyway)",
          range=(0.0, 1.0, 0.0)),
    Param("frame_queue", 1, "frames of each camera that wait while the network runs, oldest first, each pass taking "
          "the oldest of each camera; a full queue drops its oldest frame (counted as dropped). 1: only the newest "
          "frame waits (lowest latency, live cameras); more: every frame of a burst is answered in order (with "
          "input_qos reliable and frame_queue and input_depth at least the burst, a replay loses nothing)",
          range=(1, 1000, 1)),
]

# Outputs beside the images (hypood_ros/node/side_outputs.py): camera_info for image_geometry/RViz, lossless PNGs
PARAMS += [
    Param("publish_camera_info", True, "publish the calibration of the image outputs beside them (ood/camera_info, "
          "semantic/camera_info): the camera_info matched to the frame, scaled when an output's size differs",
          dynamic=True),
    Param("publish_compressed_labels", False, "also publish semantic/labels/compressed (sensor_msgs/CompressedImage, "
          "lossless PNG, as image_transport's compressed transport reads it)", dynamic=True),
    Param("publish_compressed_mask", False, "also publish ood/mask/compressed (sensor_msgs/CompressedImage, lossless "
          "PNG)", dynamic=True),
    Param("png_level", 3, "zlib level of the PNG outputs: 0 (fastest, largest) to 9 (slowest, smallest)", dynamic=True,
          range=(0, 9, 1)),
]

BY_NAME: Dict[str, Param] = {p.name: p for p in PARAMS}


def default(name: str) -> Any:
    """The default of parameter `name` (KeyError for names not in the table)."""
    return BY_NAME[name].default


def markdown_table() -> str:
    """The parameter table as Markdown, for docs/NODE.md (`python -m hypood_ros.defaults`; a test compares)."""

    def allowed(p: Param) -> str:
        if p.choices is not None:
            return " \\| ".join(f"`{c}`" if c else "`\"\"`" for c in p.choices)
        if p.range is not None:
            lo, hi, step = p.range
            if p.type is int:
                return f"{int(lo)} .. {int(hi)}" + (f", step {int(step)}" if step > 1 else "")
            return f"{lo:g} .. {hi:g}"
        return ""

    rows = ["| parameter | default | allowed | at run time | description |", "|---|---|---|---|---|"]
    for p in PARAMS:
        shown = str(p.default).lower() if isinstance(p.default, bool) else p.default
        value = "`\"\"`" if p.default == "" else f"`{shown}`"
        rows.append(f"| `{p.name}` | {value} | {allowed(p)} | {'yes' if p.dynamic else 'no'} | "
                    f"{p.description.replace('|', '/')} |")
    return "\n".join(rows)


class ParamValueError(ConfigError):
    """A value the table refuses: `parameter NAME REASON`; `reason` alone is for callers that name the
    parameter their own way (the CLI's `argument --NAME: REASON`)."""

    def __init__(self, param: Param, reason: str) -> None:
        super().__init__(f"parameter {param.name} {reason}")
        self.param = param
        self.reason = reason


def _typed(param: Param, value: Any) -> Any:
    """`value` as the table's type (an integer is taken for a float), or None when it is not of that type."""
    if isinstance(value, bool) or param.type is bool:
        return value if isinstance(value, bool) and param.type is bool else None
    if param.type is int:
        return int(value) if isinstance(value, numbers.Integral) else None
    if param.type is float:
        return float(value) if isinstance(value, numbers.Real) else None
    return value if isinstance(value, param.type) else None


def _shown(bound: float) -> str:
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def check_value(param: Param, value: Any) -> Any:
    """THE check of a value against the table: its type (an integer is taken for a float), a finite float,
    the range (and the step of an integer range), the allowed values. Returns the value as the table's
    type; raises ParamValueError (a ConfigError) with a one-line reason. The node's start-up check,
    params files, `PipelineConfig` and the CLI options all call it."""
    typed = _typed(param, value)
    if typed is None:
        raise ParamValueError(param, f"must be {param.type.__name__}, got {value!r}")
    if param.type is float and not math.isfinite(typed):
        raise ParamValueError(param, f"must be a finite number, got {value!r}")
    if param.choices is not None and typed not in param.choices:
        raise ParamValueError(param, f"must be one of {', '.join(map(repr, param.choices))}, got {value!r}")
    if param.range is not None:
        lo, hi, step = param.range
        if not lo <= typed <= hi or (param.type is int and step and (typed - lo) % step):
            steps = f" in steps of {_shown(step)}" if param.type is int and step > 1 else ""
            raise ParamValueError(param, f"must be in [{_shown(lo)}, {_shown(hi)}]{steps}, got {typed!r}")
    return typed


if __name__ == "__main__":
    print(markdown_table())
