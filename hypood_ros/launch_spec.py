"""What the launch files start, once, without the launch library (ROS-free: CI tests it without a ROS install).

launch/hypood.launch.py and launch/replay.launch.py declare their arguments from ARGUMENTS, read the
values given, and build the node from `node_kwargs`; replay adds the checks for its tools (`replay_problems`),
the player's command line and RViz's arguments. The launch files only wrap these in launch actions.

Precedence: a node parameter's launch argument (`model`, `backend`, `engine`, `device`, `input_type`,
`input_qos`, `use_sim_time`) is passed to the node only when it is given a value; left empty, the node gets
the value from `params_file`, else the package default (hypood_ros.defaults). A given argument overrides
the params file. `replay.launch.py` always sets `use_sim_time` (the bag's `--clock` drives it).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from hypood_ros.defaults import BY_NAME, check_value, default
from hypood_ros.errors import ConfigError
from hypood_ros.node.params_files import read, values_for
from hypood_ros.topics import CAMERA_INFO, IMAGE, IMAGE_COMPRESSED, ODOM, READY_MARK, camera_info_for

HYPOOD, REPLAY = "hypood", "replay"  # the launch files, by the first part of their names
BOTH = (HYPOOD, REPLAY)
PACKAGE, EXECUTABLE, NODE_NAME = "hypood_ros", "hypood_node", "hypood"
LIFECYCLE_EXECUTABLE = "hypood_lifecycle_node"  # the managed node (hypood_ros.node.managed)
#: Node parameters that have a launch argument of the same name (passed on only when given).
NODE_ARGUMENTS: Tuple[str, ...] = ("model", "backend", "engine", "device", "input_type", "input_qos",
                                   "use_sim_time")
CLOCK_HZ = 40  # replay's `ros2 bag play --clock` rate
TRUE, FALSE = ("true", "True", "1"), ("false", "False", "0")


@dataclass(frozen=True)
class Argument:
    name: str
    files: Tuple[str, ...]  # which launch files declare it
    default: Optional[str]  # None: required
    shown: str  # the default in words, for the table in docs/NODE.md
    description: str


def _node_argument(name: str, description: Optional[str] = None) -> Argument:
    if name == "use_sim_time":
        shown, files = "params file, else `false`", (HYPOOD,)
    else:
        value = default(name)
        shown, files = f"params file, else {f'`{value}`' if value else 'empty'}", BOTH
    return Argument(name, files, "", shown, description or BY_NAME[name].description)


ARGUMENTS: Tuple[Argument, ...] = (
    Argument("camera", (HYPOOD,), "/camera/image_raw", "`/camera/image_raw`",
             "camera image topic (the base topic when input_type is compressed)"),
    Argument("bag", (REPLAY,), None, "(required)", "rosbag2 bag (.db3 / .mcap or its directory)"),
    Argument("topic", (REPLAY,), "/camera/image_raw", "`/camera/image_raw`",
             "image topic in the bag (Image; CompressedImage with input_type compressed)"),
    Argument("rate", (REPLAY,), "1.0", "`1.0`", "playback speed factor"),
    Argument("camera_info", BOTH, "", "beside the camera",
             "CameraInfo topic for the obstacle outputs (replay: played from the bag); empty: the camera's "
             "sibling, e.g. /front/camera_info for /front/image_raw or /front/image_raw/compressed"),
    Argument("odom", BOTH, "/odom", "`/odom`",
             "Odometry topic for ood/grid (optional; replay: played from the bag)"),
    Argument("params_file", BOTH, "", "none",
             "parameters YAML for the node; the node parameter arguments below override it when given"),
    Argument("namespace", BOTH, "", "empty", "namespace of the node and its topics (and of RViz in replay)"),
    *(_node_argument(name) for name in NODE_ARGUMENTS if name != "use_sim_time"),
    _node_argument("use_sim_time", "follow /clock instead of wall time (replay: always, from the bag's clock)"),
    Argument("lifecycle", (HYPOOD,), "false", "`false`",
             "true: start the managed node (hypood_lifecycle_node), which waits unconfigured for its lifecycle "
             "manager or `ros2 lifecycle set` (configure loads the model, activate subscribes to the camera)"),
    Argument("dds_profile", BOTH, "auto", "`auto`",
             "Fast DDS profile for every process the file starts: a path, 'shipped', 'none' (Fast DDS defaults) "
             "or 'auto' (the file the environment already names, else the shipped one)"),
    Argument("frame_id", (REPLAY,), "", "the bag's",
             "RViz fixed frame; empty: the frame_id of the bag's first frame on topic"),
    Argument("rviz", (REPLAY,), "true", "`true`", "start RViz with rviz/hypood.rviz (needs rviz2)"),
)
BY_ARGUMENT: Dict[str, Argument] = {a.name: a for a in ARGUMENTS}


def arguments(launch_file: str) -> List[Argument]:
    """The arguments that `launch_file` (HYPOOD or REPLAY) declares, in the order of docs/NODE.md."""
    return [a for a in ARGUMENTS if launch_file in a.files]


def markdown_table() -> str:
    """The launch arguments as Markdown, for docs/NODE.md (`python -m hypood_ros.launch_spec`; a test compares)."""
    rows = ["| argument | launch file | default | meaning |", "|---|---|---|---|"]
    for a in ARGUMENTS:
        files = "both" if a.files == BOTH else a.files[0]
        rows.append(f"| `{a.name}` | {files} | {a.shown} | {a.description.replace('|', '/')} |")
    return "\n".join(rows)


def flag(name: str, value: str) -> bool:
    """A true/false launch argument."""
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ConfigError(f"launch argument {name} must be true or false, got {value!r}")


def node_overrides(values: Mapping[str, str]) -> Dict[str, Any]:
    """The node parameters that the launch passes on: those of NODE_ARGUMENTS given a value, typed and
    checked against the parameter table (ConfigError names the first bad one, before anything starts)."""
    out: Dict[str, Any] = {}
    for name in NODE_ARGUMENTS:
        value = values.get(name, "")
        if value == "":
            continue
        out[name] = flag(name, value) if name == "use_sim_time" else check_value(BY_NAME[name], value)
    return out


def fully_qualified(namespace: str) -> str:
    """The node's fully qualified name in `namespace` (as a params file section addresses it)."""
    parts = [p for p in namespace.split("/") if p]
    return "/" + "/".join(parts + [NODE_NAME])


def effective(values: Mapping[str, str], name: str) -> Any:
    """The value the node will have for parameter `name`: the given launch argument, else the params file's
    (its sections for this node), else the package default."""
    overrides = node_overrides(values)
    if name in overrides:
        return overrides[name]
    if values.get("params_file"):
        from_file = values_for(read(values["params_file"]), fully_qualified(values.get("namespace", "")))
        if name in from_file:
            return from_file[name]
    return default(name)


def camera_topics(values: Mapping[str, str], launch_file: str) -> Tuple[str, str]:
    """(raw image topic, compressed image topic) for the node's `image` and `image/compressed`.

    hypood: `camera` is the base topic, as image_transport names it. replay: `topic` is the bag's topic, of
    whichever type input_type asks for, so both inputs are remapped to it."""
    if launch_file == HYPOOD:
        camera = values["camera"]
        return camera, camera.rstrip("/") + "/compressed"
    return values["topic"], values["topic"]


def camera_info_topic(values: Mapping[str, str], launch_file: str) -> str:
    """The given `camera_info`, else the camera's sibling (topics.camera_info_for)."""
    return values.get("camera_info") or camera_info_for(camera_topics(values, launch_file)[1])


def check_params_file(values: Mapping[str, str]) -> None:
    path = values.get("params_file", "")
    if path and not os.path.isfile(path):
        raise ConfigError(f"params file not found: {path}")


def node_kwargs(values: Mapping[str, str], launch_file: str,
                string: Callable[[str], Any] = str) -> Dict[str, Any]:
    """Keyword arguments of launch_ros's Node for the hypood node: parameters are the params file (if given)
    and then the launch arguments given (later wins); `string` wraps string values (the launch files pass
    launch_ros's ParameterValue(value, value_type=str), which keeps '' and '123' strings)."""
    check_params_file(values)
    overrides = node_overrides(values)
    if launch_file == REPLAY:
        overrides["use_sim_time"] = True  # ros2 bag play --clock drives the node
    image, compressed = camera_topics(values, launch_file)
    parameters: List[Any] = [values["params_file"]] if values.get("params_file") else []
    if overrides:
        parameters.append({k: string(v) if isinstance(v, str) else v for k, v in overrides.items()})
    managed = launch_file == HYPOOD and flag("lifecycle", values.get("lifecycle", "false"))
    return {
        "package": PACKAGE,
        "executable": LIFECYCLE_EXECUTABLE if managed else EXECUTABLE,
        "name": NODE_NAME,
        "namespace": values.get("namespace", ""),
        "output": "screen",
        "parameters": parameters,
        "remappings": [(IMAGE, image), (IMAGE_COMPRESSED, compressed),
                       (CAMERA_INFO, camera_info_topic(values, launch_file)), (ODOM, values["odom"])],
    }


# ---- replay ---------------------------------------------------------------------------------------------


def package_prefix(package: str) -> Optional[str]:
    """The install prefix of a ROS package from the ament index, or None (not installed, or no ROS environment)."""
    try:
        from ament_index_python.packages import get_package_prefix

        return get_package_prefix(package)
    except (ImportError, LookupError, OSError, ValueError):
        return None


def package_executable(package: str, executable: str) -> Optional[str]:
    """Where launch_ros finds `executable` of `package` (<prefix>/lib/<package>/), or None."""
    prefix = package_prefix(package)
    path = os.path.join(prefix or "", "lib", package, executable)
    return path if prefix is not None and os.path.isfile(path) and os.access(path, os.X_OK) else None


def replay_problems(values: Mapping[str, str]) -> List[str]:
    """What keeps replay.launch.py from running, found before it starts anything: the bag, `ros2 bag` and
    (with rviz:=true) rviz2. (node_kwargs checks the node's values, also before anything starts.)"""
    problems = []
    if not os.path.exists(values["bag"]):
        problems.append(f"bag not found: {values['bag']}")
    if shutil.which("ros2") is None:
        problems.append("`ros2 bag play` is needed and `ros2` is not on PATH (source the ROS setup file)")
    elif package_prefix("ros2bag") is None:
        problems.append("`ros2 bag play` is needed and ros2bag is not installed (ros-$ROS_DISTRO-rosbag2)")
    if flag("rviz", values["rviz"]) and package_executable("rviz2", "rviz2") is None:
        problems.append("rviz2 is not installed (ros-$ROS_DISTRO-rviz2); give rviz:=false to replay without RViz")
    return problems


def player_command(values: Mapping[str, str]) -> List[str]:
    """`ros2 bag play` of the camera, its camera_info and the odometry, publishing /clock."""
    return ["ros2", "bag", "play", values["bag"], "--rate", values["rate"], "--topics", values["topic"],
            camera_info_topic(values, REPLAY), values["odom"], "--clock", str(CLOCK_HZ)]


def when_ready(actions):
    """An OnProcessIO callback that returns `actions` once, at the node's first output line with READY_MARK."""
    started = []

    def on_output(event):
        if not started and READY_MARK in event.text.decode(errors="replace"):
            started.append(True)
            return actions
        return None

    return on_output


def exit_problem(what: str, returncode: int) -> Optional[str]:
    """None when a process that ends the replay exited cleanly, else the line to end the launch with."""
    return None if returncode == 0 else f"{what} exited with status {returncode}"


def rviz_config(text: str, compressed: bool) -> str:
    """The shipped RViz config, with the camera display on `image/compressed` for a compressed camera.

    rviz2's image displays take the transport from the topic's last name (`.../compressed` -> compressed
    transport on the base topic), so RViz subscribes to `image/compressed`, remapped to the bag's topic."""
    if not compressed:
        return text
    import yaml

    data = yaml.safe_load(text)
    for display in data["Visualization Manager"]["Displays"]:
        if display.get("Topic", {}).get("Value") == IMAGE:
            display["Topic"]["Value"] = IMAGE_COMPRESSED
    return yaml.safe_dump(data, sort_keys=False)


def rviz_kwargs(values: Mapping[str, str], config: str, frame: str, compressed: bool) -> Dict[str, Any]:
    """Keyword arguments of launch_ros's Node for RViz in the node's namespace, on the bag's clock."""
    return {
        "package": "rviz2",
        "executable": "rviz2",
        "name": "rviz2",
        "namespace": values.get("namespace", ""),
        "arguments": ["-d", config] + (["-f", frame] if frame else []),
        "parameters": [{"use_sim_time": True}],
        "remappings": [(IMAGE_COMPRESSED if compressed else IMAGE, values["topic"])],
    }


if __name__ == "__main__":
    print(markdown_table())
