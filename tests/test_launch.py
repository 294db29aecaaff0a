"""The launch files: their arguments, the node they start, replay's tools and its end.

Without `launch` and `launch_ros` (CI: they come only with a ROS install) the tests check what the launch files
are made of: hypood_ros.launch_spec (the arguments, the node description, the precedence of launch arguments
over the params file, the camera_info sibling rule, replay's tool checks, player and RViz command lines), the
argument table in docs/NODE.md, and that both launch files build the node from it. Where `launch` and `launch_ros`
can be imported, the tests marked `ros` run both launch files with a real LaunchService, find the node over
DDS, read its parameters back and check that no process is left after the launch ends (docs/LAUNCH.md).
"""
import ast
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer

from hypood_ros.bags import first_frame_id, typestore
from hypood_ros.defaults import BY_NAME, PARAMS, default
from hypood_ros.errors import ConfigError
from hypood_ros.launch_spec import (
    ARGUMENTS,
    BY_ARGUMENT,
    HYPOOD,
    NODE_ARGUMENTS,
    READY_MARK,
    REPLAY,
    arguments,
    effective,
    exit_problem,
    markdown_table,
    node_kwargs,
    node_overrides,
    player_command,
    replay_problems,
    rviz_config,
    rviz_kwargs,
    when_ready,
)
from hypood_ros.topics import camera_info_for

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = {HYPOOD: "hypood.launch.py", REPLAY: "replay.launch.py"}


def given(launch_file, **values):
    """The values a launch file hands to launch_spec: every argument's default, then `values`."""
    out = {a.name: a.default or "" for a in arguments(launch_file)}
    out.update(values)
    return out


# ---- arguments: the spec, docs/NODE.md, the defaults table ----------------------------------------------


def test_node_page_launch_table_is_the_generated_one():
    page = (REPO / "docs" / "NODE.md").read_text()
    assert markdown_table() in page, "regenerate the table in docs/NODE.md with `python -m hypood_ros.launch_spec`"


def test_node_page_rows_state_the_parameter_tables_defaults():
    """Read from docs/NODE.md itself: each node parameter argument's row names the package default."""
    rows = {m[0]: m[1:] for m in re.findall(r"^\| `(\w+)` \| (\w+) \| ([^|]*) \|",
                                            (REPO / "docs" / "NODE.md").read_text(), re.M)}
    for name in NODE_ARGUMENTS:
        files, shown = rows[name]
        value = default(name) if name in BY_NAME else False
        stated = f"`{str(value).lower()}`" if isinstance(value, bool) else f"`{value}`" if value else "empty"
        assert shown == f"params file, else {stated}", name
        assert files == ("hypood" if name == "use_sim_time" else "both"), name
    for name, a in BY_ARGUMENT.items():
        assert rows[name][0] == ("both" if len(a.files) == 2 else a.files[0]), name


def test_node_arguments_are_node_parameters_left_empty_by_default():
    for name in NODE_ARGUMENTS:
        assert name in BY_NAME or name == "use_sim_time", name
        assert BY_ARGUMENT[name].default == "", name  # empty: not passed, the params file applies
        if name in BY_NAME:
            assert BY_ARGUMENT[name].description == BY_NAME[name].description, name
    common = {"model", "params_file", "namespace", "backend", "engine", "device", "input_type", "input_qos",
              "dds_profile", "camera_info", "odom"}
    assert common <= {a.name for a in arguments(HYPOOD)} & {a.name for a in arguments(REPLAY)}
    assert {"bag", "topic", "rate", "frame_id", "rviz"} <= {a.name for a in arguments(REPLAY)}
    assert "use_sim_time" not in {a.name for a in arguments(REPLAY)}  # replay always follows the bag's clock
    assert BY_ARGUMENT["bag"].default is None  # required
    assert len(BY_ARGUMENT) == len(ARGUMENTS)


def module(path):
    return ast.parse(path.read_text())


def test_both_launch_files_build_the_node_from_the_spec():
    """No second copy of the node or of the arguments: both files declare launch_spec's arguments and start
    the node through launch_actions.hypood_node (launch_spec.node_kwargs)."""
    for key, name in LAUNCH_FILES.items():
        source = ast.unparse(module(REPO / "launch" / name))
        assert f"declare({key.upper()})" in source and f"given(context, {key.upper()})" in source, name
        assert f"hypood_node(values, {key.upper()})" in source, name
        assert "DeclareLaunchArgument" not in source and "executable=" not in source, name
        # the DDS profile is set (or cleared) before the node and every other process
        assert "return dds_environment(values['dds_profile']) + [" in source, name
        # a node that fails ends the launch (exit status 1)
        assert "OnProcessExit(target_action=node, on_exit=ends_launch('hypood_node'))" in source, name
    actions = ast.unparse(module(REPO / "hypood_ros" / "launch_actions.py"))
    assert "kwargs = node_kwargs(values, launch_file, string=text)" in actions
    assert "return LifecycleNode(**kwargs)" in actions and "return Node(**kwargs)" in actions  # lifecycle:=true
    assert "ParameterValue(value, value_type=str)" in actions


def test_replay_checks_first_and_ends_with_the_player():
    source = ast.unparse(module(REPO / "launch" / "replay.launch.py"))
    start = source.index("def start(context):")
    body = source[start:]
    assert body.index("replay_problems(values)") < body.index("hypood_node(values, REPLAY)")
    assert "first_frame_id(values['bag'], values['topic'])" in body
    assert "OnProcessExit(target_action=play, on_exit=ends_launch('ros2 bag play'))" in body
    assert "OnProcessExit(target_action=node, on_exit=ends_launch('hypood_node'))" in body
    assert "ready = when_ready([play])" in body
    assert "OnProcessIO(target_action=node, on_stdout=ready, on_stderr=ready)" in body


# ---- the node: precedence, remaps, camera_info -----------------------------------------------------------


def test_a_params_file_alone_reaches_the_node(tmp_path):
    params = tmp_path / "front.yaml"
    params.write_text("/**:\n  ros__parameters:\n    model: front.pt\n    device: cuda\n")
    for key in LAUNCH_FILES:
        values = given(key, params_file=str(params), camera="/front/image_raw", topic="/front/image_raw",
                       bag="drive.mcap")
        kwargs = node_kwargs(values, key)
        assert kwargs["package"] == "hypood_ros" and kwargs["executable"] == "hypood_node"
        assert kwargs["name"] == "hypood" and kwargs["namespace"] == ""
        if key == HYPOOD:
            assert kwargs["parameters"] == [str(params)]  # nothing from the launch: the file decides
        else:
            assert kwargs["parameters"] == [str(params), {"use_sim_time": True}]  # the bag's clock, always
    assert node_kwargs(given(HYPOOD), HYPOOD)["parameters"] == []  # no file: the package defaults


def test_given_arguments_override_the_params_file(tmp_path):
    params = tmp_path / "front.yaml"
    params.write_text("/**:\n  ros__parameters:\n    device: cuda\n")
    values = given(HYPOOD, params_file=str(params), device="cpu", model="123", use_sim_time="true",
                   input_qos="reliable")
    kwargs = node_kwargs(values, HYPOOD, string=lambda v: ("str", v))
    # later wins in launch_ros: the file first, then what was given (strings wrapped, so '123' stays a string)
    assert kwargs["parameters"] == [str(params), {"model": ("str", "123"), "device": ("str", "cpu"),
                                                  "input_qos": ("str", "reliable"), "use_sim_time": True}]
    assert node_overrides(given(HYPOOD, use_sim_time="false")) == {"use_sim_time": False}


@pytest.mark.parametrize("name, value, message", [
    ("backend", "tensorflow", "parameter backend must be one of"),
    ("input_type", "jpeg", "parameter input_type must be one of"),
    ("use_sim_time", "yes", "launch argument use_sim_time must be true or false"),
    ("params_file", "/no/such.yaml", "params file not found: /no/such.yaml"),
])
def test_bad_values_stop_the_launch_before_the_node(name, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        node_kwargs(given(HYPOOD, **{name: value}), HYPOOD)


def test_lifecycle_argument_starts_the_managed_executable():
    assert node_kwargs(given(HYPOOD, model="m.pt"), HYPOOD)["executable"] == "hypood_node"
    kwargs = node_kwargs(given(HYPOOD, model="m.pt", lifecycle="true"), HYPOOD)
    assert kwargs["executable"] == "hypood_lifecycle_node" and kwargs["name"] == "hypood"
    with pytest.raises(ConfigError, match="launch argument lifecycle must be true or false"):
        node_kwargs(given(HYPOOD, lifecycle="maybe"), HYPOOD)
    assert "lifecycle" not in {a.name for a in arguments(REPLAY)}
    assert "hypood_lifecycle_node = hypood_ros.node.managed:main" in (REPO / "setup.py").read_text()


def test_effective_value_is_the_argument_else_the_params_file_else_the_default(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    input_type: compressed\n"
                      "/other/hypood:\n  ros__parameters:\n    input_qos: reliable\n")
    assert effective(given(REPLAY), "input_type") == "raw"
    assert effective(given(REPLAY, params_file=str(params)), "input_type") == "compressed"
    assert effective(given(REPLAY, params_file=str(params), input_type="raw"), "input_type") == "raw"
    assert effective(given(REPLAY, params_file=str(params)), "input_qos") == "sensor_data"
    assert effective(given(REPLAY, params_file=str(params), namespace="other"), "input_qos") == "reliable"


def remaps(kwargs):
    return dict(kwargs["remappings"])


def test_camera_info_follows_the_camera_by_the_sibling_rule():
    hypood = remaps(node_kwargs(given(HYPOOD, camera="/front/image_raw"), HYPOOD))
    assert hypood == {"image": "/front/image_raw", "image/compressed": "/front/image_raw/compressed",
                      "camera_info": "/front/camera_info", "odom": "/odom"}
    assert remaps(node_kwargs(given(HYPOOD), HYPOOD))["camera_info"] == camera_info_for(default_camera())
    for topic in ("/front/image_raw", "/front/image_raw/compressed"):
        values = given(REPLAY, topic=topic, bag="b")
        replay = remaps(node_kwargs(values, REPLAY))
        assert replay["image"] == replay["image/compressed"] == topic  # the bag's topic, raw or compressed
        assert replay["camera_info"] == "/front/camera_info" == camera_info_for(topic)
        assert player_command(values)[player_command(values).index("--topics") + 2] == "/front/camera_info"
    given_info = given(HYPOOD, camera="/front/image_raw", camera_info="/calib/front")
    assert remaps(node_kwargs(given_info, HYPOOD))["camera_info"] == "/calib/front"


def default_camera():
    return BY_ARGUMENT["camera"].default


def test_player_command():
    values = given(REPLAY, bag="drive.mcap", topic="/front/image_raw", rate="2.0")
    assert player_command(values) == ["ros2", "bag", "play", "drive.mcap", "--rate", "2.0", "--topics",
                                      "/front/image_raw", "/front/camera_info", "/odom", "--clock", "40"]


# ---- replay: tools, its end, RViz ------------------------------------------------------------------------


def executable(path, text="#!/bin/sh\nexit 0\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def ament_prefix(root, packages, executables=()):
    """An ament prefix with `packages` registered and `executables` ((package, name)) in lib/<package>/."""
    index = root / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True, exist_ok=True)
    for package in packages:
        (index / package).write_text("")
    for package, name in executables:
        executable(root / "lib" / package / name)
    return root


def test_replay_problems_name_each_missing_tool_before_anything_starts(tmp_path, monkeypatch):
    bag = tmp_path / "drive.mcap"
    bag.write_bytes(b"")
    tools = tmp_path / "bin"
    monkeypatch.setenv("PATH", str(tools))
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(ament_prefix(tmp_path / "prefix", [])))
    values = given(REPLAY, bag=str(bag))
    assert replay_problems(given(REPLAY, bag=str(tmp_path / "gone"), rviz="false"))[0] == \
        f"bag not found: {tmp_path / 'gone'}"
    assert replay_problems(values) == [
        "`ros2 bag play` is needed and `ros2` is not on PATH (source the ROS setup file)",
        "rviz2 is not installed (ros-$ROS_DISTRO-rviz2); give rviz:=false to replay without RViz"]
    executable(tools / "ros2")
    assert replay_problems(dict(values, rviz="false")) == [
        "`ros2 bag play` is needed and ros2bag is not installed (ros-$ROS_DISTRO-rosbag2)"]
    ament_prefix(tmp_path / "prefix", ["ros2bag", "rviz2"])  # rviz2 registered, its executable missing
    assert replay_problems(values) == [
        "rviz2 is not installed (ros-$ROS_DISTRO-rviz2); give rviz:=false to replay without RViz"]
    ament_prefix(tmp_path / "prefix", [], [("rviz2", "rviz2")])
    assert replay_problems(values) == []
    monkeypatch.delenv("AMENT_PREFIX_PATH")  # no ROS environment at all
    assert len(replay_problems(values)) == 2


def test_the_player_or_the_node_ending_ends_the_replay():
    assert exit_problem("ros2 bag play", 0) is None  # finished: shut down, exit status 0
    assert exit_problem("ros2 bag play", 3) == "ros2 bag play exited with status 3"
    assert exit_problem("hypood_node", -11) == "hypood_node exited with status -11"


def test_the_ready_callback_fires_once_on_the_nodes_ready_line():
    class Line:  # what launch's ProcessIO events carry: the raw bytes of the output
        def __init__(self, text):
            self.text = text.encode()

    start = when_ready(["play"])
    assert start(Line("[INFO] [hypood]: loading model.pt")) is None
    line = f"[INFO] [1700000000.1] [hypood]: {READY_MARK} torch backend on cpu, input 56x112"
    assert start(Line(line)) == ["play"]
    assert start(Line(line)) is None  # never twice


def test_rviz_shows_a_compressed_camera_through_its_transport():
    shipped = (REPO / "rviz" / "hypood.rviz").read_text()
    assert rviz_config(shipped, compressed=False) == shipped
    raw = yaml.safe_load(shipped)["Visualization Manager"]["Displays"]
    derived = yaml.safe_load(rviz_config(shipped, compressed=True))["Visualization Manager"]["Displays"]
    changed = [(a["Name"], b["Topic"]["Value"]) for a, b in zip(raw, derived) if a != b]
    assert changed == [("Camera", "image/compressed")]  # rviz2 picks the transport from the last name
    values = given(REPLAY, bag="b", topic="/front/image_raw/compressed", namespace="car")
    kwargs = rviz_kwargs(values, "/tmp/x.rviz", "front_optical", compressed=True)
    assert kwargs["remappings"] == [("image/compressed", "/front/image_raw/compressed")]
    assert kwargs["arguments"] == ["-d", "/tmp/x.rviz", "-f", "front_optical"]
    assert kwargs["namespace"] == "car" and kwargs["parameters"] == [{"use_sim_time": True}]
    raw_kwargs = rviz_kwargs(given(REPLAY, bag="b", topic="/front/image_raw"), "c.rviz", "", compressed=False)
    assert raw_kwargs["remappings"] == [("image", "/front/image_raw")] and raw_kwargs["arguments"] == ["-d", "c.rviz"]


def test_rviz_config_uses_relative_topics():
    data = yaml.safe_load((REPO / "rviz" / "hypood.rviz").read_text())
    displays = data["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"] for d in displays}
    assert {"image", "semantic/color", "ood/score", "ood/mask", "ood/overlay"} <= topics
    assert not any(t.startswith("/") for t in topics)
    assert all(d["Topic"]["Reliability Policy"] == "Best Effort" for d in displays)  # matches either publisher
    assert data["Visualization Manager"]["Global Options"]["Fixed Frame"] != "camera"
    classes = {d["Topic"]["Value"]: d["Class"] for d in displays}
    assert classes["ood/obstacles"] == "rviz_default_plugins/PointCloud2"
    assert classes["ood/grid"] == "rviz_default_plugins/Map"
    assert classes["ood/markers"] == "rviz_default_plugins/MarkerArray"


def write_bag(path, topic="/front/image_raw", compressed=False, frames=("front_optical", "other")):
    store = typestore()
    header, time_ = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    kind = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(topic, kind, typestore=store)
        for i, frame in enumerate(frames):
            h = header(stamp=time_(sec=i, nanosec=0), frame_id=frame)
            if compressed:
                msg = store.types[kind](header=h, format="png", data=np.zeros(1, np.uint8))
            else:
                msg = store.types[kind](header=h, height=1, width=1, encoding="mono8", is_bigendian=0, step=1,
                                        data=np.zeros(1, np.uint8))
            writer.write(conn, i + 1, store.serialize_cdr(msg, kind))
    return path


def test_first_frame_id_reads_the_bag(tmp_path):
    assert first_frame_id(write_bag(tmp_path / "bag"), "/front/image_raw") == "front_optical"


def test_params_file_covers_exactly_the_declared_parameters():
    data = yaml.safe_load((REPO / "config" / "hypood.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert set(values) == {p.name for p in PARAMS}
    for p in PARAMS:
        assert type(values[p.name]) is type(p.default), p.name


# ---- with the real launch and launch_ros (where they can be imported) -----------------------------------

try:
    from launch import LaunchService  # noqa: F401  (the repository's launch/ folder has no LaunchService)
    from launch_ros.actions import Node  # noqa: F401
    HAVE_LAUNCH = True
except ImportError:
    HAVE_LAUNCH = False

needs_launch = pytest.mark.skipif(not HAVE_LAUNCH, reason="needs launch and launch_ros (a ROS install)")

# `ros2 launch PACKAGE FILE args` as ros2launch.api.launch_a_launch_file runs it.
RUN_LAUNCH = """
import sys
import launch
from launch.launch_description_sources import PythonLaunchDescriptionSource
service = launch.LaunchService(argv=sys.argv[2:], noninteractive=True)
service.include_launch_description(launch.LaunchDescription([launch.actions.IncludeLaunchDescription(
    PythonLaunchDescriptionSource(sys.argv[1]), launch_arguments=[a.split(':=', 1) for a in sys.argv[2:]])]))
sys.exit(service.run())
"""


class Launch:
    """A launch file run by a real LaunchService in its own process, tagged so that every process it starts
    can be found afterwards (by an environment variable that children inherit)."""

    def __init__(self, root, launch_file, args, domain, path_dirs=(), prefixes=()):
        self.tag, self.domain = uuid.uuid4().hex, domain
        prefix = ament_prefix(root / "hypood_prefix", ["hypood_ros"], [])
        share = prefix / "share" / "hypood_ros"
        share.mkdir(exist_ok=True)
        for folder in ("launch", "config", "rviz"):
            if not (share / folder).exists():
                (share / folder).symlink_to(REPO / folder)
        executable(prefix / "lib" / "hypood_ros" / "hypood_node",
                   f'#!/bin/sh\nexec "{sys.executable}" -m hypood_ros.node.hypood_node "$@"\n')
        executable(prefix / "lib" / "hypood_ros" / "hypood_lifecycle_node",
                   f'#!/bin/sh\nexec "{sys.executable}" -m hypood_ros.node.managed "$@"\n')
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                   PYTHONUNBUFFERED="1", HYPOOD_LAUNCH_CHECK=self.tag)
        env.pop("ROS_LOCALHOST_ONLY", None)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        env["AMENT_PREFIX_PATH"] = os.pathsep.join(
            [str(prefix), *map(str, prefixes)] + [p for p in [os.environ.get("AMENT_PREFIX_PATH")] if p])
        without_ros2 = [d for d in os.environ.get("PATH", "").split(os.pathsep) if not (Path(d) / "ros2").exists()]
        env["PATH"] = os.pathsep.join([*map(str, path_dirs), *without_ros2])
        self.log = root / f"{launch_file}.{self.tag[:6]}.log"
        self.out = open(self.log, "w")
        self.proc = subprocess.Popen([sys.executable, "-c", RUN_LAUNCH, str(share / "launch" / launch_file), *args],
                                     env=env, stdout=self.out, stderr=subprocess.STDOUT, cwd=root)

    def wait(self, timeout=120):
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.out.close()

    def interrupt(self):
        self.proc.send_signal(signal.SIGINT)  # Ctrl-C, as on a terminal
        return self.wait(60)

    def text(self):
        return self.log.read_text()

    def leftovers(self):
        """Processes still running that the launch started (its tag in their environment)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != self.proc.pid:
                try:
                    if f"HYPOOD_LAUNCH_CHECK={self.tag}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def close(self):
        for pid in self.leftovers():
            os.kill(pid, signal.SIGKILL)  # the test failed already; leave nothing behind
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


@pytest.fixture
def run_launch(tmp_path):
    from ros_harness import random_domain

    started = []

    def run(launch_file, *args, **kwargs):
        launch = Launch(tmp_path, launch_file, list(args), random_domain(), **kwargs)
        started.append(launch)
        return launch

    yield run
    for launch in started:
        launch.close()


def launched_node(launch, namespace="", names=(), topics=(), timeout=90):
    """The launched node, found over DDS by a peer in its namespace: {name: value} of its parameters `names`,
    once it subscribes to all of `topics`. Fails if the launch process ends first."""
    from rclpy.parameter import parameter_value_to_python

    from ros_harness import Peer

    peer = Peer(launch.domain, namespace=namespace)
    try:
        deadline = time.monotonic() + timeout
        subscribed = set()
        while not set(topics) <= subscribed:
            assert launch.proc.poll() is None, f"the launch ended ({launch.proc.returncode}):\n{launch.text()}"
            assert time.monotonic() < deadline, f"node subscribes to {sorted(subscribed)}:\n{launch.text()}"
            time.sleep(0.2)
            if ("hypood", namespace or "/") in peer.node.get_node_names_and_namespaces():
                subscribed = {t for t, _ in peer.node.get_subscriber_names_and_types_by_node("hypood",
                                                                                             namespace or "/")}
        values = peer.parameter_call("get_parameters", list(names)).values
        return dict(zip(names, map(parameter_value_to_python, values)))
    finally:
        peer.close()


def params_yaml(path, model, **values):
    values = {"model": str(model), "input_height": 56, "input_width": 112, **values}
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}))
    return path


NAMES = ("model", "backend", "device", "input_type", "input_qos", "use_sim_time", "input_width")


@pytest.mark.ros
@needs_launch
def test_real_launch_a_params_file_and_the_camera_alone(run_launch, tiny_checkpoint, tmp_path):
    """The example in docs/NODE.md: a params file and no launch argument beyond the camera."""
    params = params_yaml(tmp_path / "front.yaml", tiny_checkpoint, input_qos="reliable", backend="torch")
    launch = run_launch("hypood.launch.py", "camera:=/front/image_raw", f"params_file:={params}")
    # camera_info beside the camera
    values = launched_node(launch, names=NAMES, topics={"/front/image_raw", "/front/camera_info", "/odom"})
    assert values == {"model": str(tiny_checkpoint), "backend": "torch", "device": "cpu", "input_type": "raw",
                      "input_qos": "reliable", "use_sim_time": False, "input_width": 112}
    assert launch.interrupt() == 0
    assert launch.leftovers() == []


@pytest.mark.ros
@needs_launch
def test_real_launch_arguments_given_override_the_params_file(run_launch, tiny_checkpoint, tmp_path):
    params = params_yaml(tmp_path / "front.yaml", tmp_path / "not_this.pt", input_qos="reliable")
    launch = run_launch("hypood.launch.py", "camera:=/front/image_raw", f"params_file:={params}",
                        f"model:={tiny_checkpoint}", "input_qos:=sensor_data", "use_sim_time:=true",
                        "namespace:=car", "camera_info:=/calib/front")
    values = launched_node(launch, "/car", NAMES, topics={"/front/image_raw", "/calib/front", "/clock"})
    assert values == {"model": str(tiny_checkpoint), "backend": "", "device": "cpu", "input_type": "raw",
                      "input_qos": "sensor_data", "use_sim_time": True, "input_width": 112}
    assert launch.interrupt() == 0
    assert launch.leftovers() == []


@pytest.mark.ros
@needs_launch
def test_real_launch_the_lifecycle_node(run_launch, tiny_checkpoint, tmp_path):
    """lifecycle:=true: the managed node starts unconfigured (no camera subscription) and subscribes once a
    lifecycle client has configured and activated it; Ctrl-C ends the launch with nothing left."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    from ros_harness import Peer

    launch = run_launch("hypood.launch.py", "camera:=/front/image_raw", f"model:={tiny_checkpoint}", "lifecycle:=true")
    peer = Peer(launch.domain)
    try:
        client = peer.node.create_client(ChangeState, "/hypood/change_state")
        assert client.wait_for_service(timeout_sec=90), launch.text()
        deadline = time.monotonic() + 30
        while ("hypood", "/") not in peer.node.get_node_names_and_namespaces() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "/front/image_raw" not in {t for t, _ in peer.node.get_subscriber_names_and_types_by_node("hypood", "/")}
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
            deadline = time.monotonic() + 90
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert future.done() and future.result().success, launch.text()
    finally:
        peer.close()
    values = launched_node(launch, names=("model",), topics={"/front/image_raw", "/front/camera_info"})
    assert values == {"model": str(tiny_checkpoint)}
    assert launch.interrupt() == 0
    assert "[hypood_lifecycle_node-1]" in launch.text()
    assert launch.leftovers() == []


@pytest.mark.ros
@needs_launch
def test_real_launch_a_node_that_cannot_start_fails_the_launch(run_launch, tmp_path):
    launch = run_launch("hypood.launch.py", "camera:=/front/image_raw")  # no model anywhere
    assert launch.wait() == 1
    text = launch.text()
    assert "hypood_node: error: parameter 'model' is empty" in text
    assert text.splitlines()[-1] == ("[ERROR] [launch]: Caught exception in launch (see debug for traceback): "
                                     "hypood_node exited with status 1"), text
    assert launch.leftovers() == []


def fake_tools(root, player_status=0, player_seconds=1.0, rviz=False):
    """A `ros2` on PATH that records its command line, waits and exits with `player_status`, an ament prefix
    with ros2bag (and, with `rviz`, an rviz2 that records its command line and config and waits for Ctrl-C):
    stand-ins for the ROS tools that cannot be installed here, to check what the launch does with them."""
    record = root / "record"
    record.mkdir(exist_ok=True)
    executable(root / "bin" / "ros2", f"""#!/bin/sh
printf '%s\\n' "$@" > "{record}/ros2.args"
sleep {player_seconds}
exit {player_status}
""")
    prefix = ament_prefix(root / "tools_prefix", ["ros2bag"] + (["rviz2"] if rviz else []))
    if rviz:
        executable(prefix / "lib" / "rviz2" / "rviz2", f"""#!/bin/sh
printf '%s\\n' "$@" > "{record}/rviz2.args"
while [ $# -gt 0 ]; do [ "$1" = "-d" ] && cp "$2" "{record}/rviz2.config"; shift; done
trap 'exit 0' INT TERM
while :; do sleep 0.1; done
""")
    return record, {"path_dirs": [root / "bin"], "prefixes": [prefix]}


def rviz2_installed():
    from hypood_ros.launch_spec import package_executable

    return package_executable("rviz2", "rviz2") is not None


@pytest.mark.ros
@needs_launch
def test_real_replay_without_rviz2_starts_nothing(run_launch, tiny_checkpoint, tmp_path):
    if rviz2_installed():
        pytest.skip("rviz2 is installed here")
    _, tools = fake_tools(tmp_path)
    bag = write_bag(tmp_path / "bag")
    launch = run_launch("replay.launch.py", f"bag:={bag}", "topic:=/front/image_raw", f"model:={tiny_checkpoint}",
                        **tools)  # rviz:=true by default
    assert launch.wait() == 1
    errors = [line for line in launch.text().splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "rviz2 is not installed" in errors[0] and "rviz:=false" in errors[0]
    assert "process started" not in launch.text() and "Traceback" not in launch.text()
    assert launch.leftovers() == []


@pytest.mark.ros
@needs_launch
def test_real_replay_without_ros2_bag_starts_nothing(run_launch, tiny_checkpoint, tmp_path):
    bag = write_bag(tmp_path / "bag")
    launch = run_launch("replay.launch.py", f"bag:={bag}", "topic:=/front/image_raw", f"model:={tiny_checkpoint}",
                        "rviz:=false")  # no ros2 on PATH
    assert launch.wait() == 1
    errors = [line for line in launch.text().splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "`ros2` is not on PATH" in errors[0], launch.text()
    assert "process started" not in launch.text() and "Traceback" not in launch.text()
    assert launch.leftovers() == []


@pytest.mark.ros
@needs_launch
@pytest.mark.parametrize("status", [0, 3])
def test_real_replay_ends_with_the_player(run_launch, tiny_checkpoint, tmp_path, status):
    record, tools = fake_tools(tmp_path, player_status=status)
    bag = write_bag(tmp_path / "bag")
    params = params_yaml(tmp_path / "p.yaml", tiny_checkpoint)
    launch = run_launch("replay.launch.py", f"bag:={bag}", "topic:=/front/image_raw", f"params_file:={params}",
                        "rviz:=false", **tools)
    assert launch.wait() == (0 if status == 0 else 1), launch.text()
    text = launch.text()
    assert text.index(READY_MARK) < text.index("[ros2_bag_play-2]: process started")  # the bag after ready
    assert (record / "ros2.args").read_text().split() == [
        "bag", "play", str(bag), "--rate", "1.0", "--topics", "/front/image_raw", "/front/camera_info", "/odom",
        "--clock", "40"]
    errors = [line for line in text.splitlines() if "[ERROR]" in line]
    if status:  # launch's own line for the process, then the one that ends the launch
        assert len(errors) == 2 and "[ros2_bag_play-2]: process has died [pid" in errors[0], text
        assert errors[1] == ("[ERROR] [launch]: Caught exception in launch (see debug for traceback): "
                             f"ros2 bag play exited with status {status}")
    else:
        assert errors == [] and "[INFO] [ros2_bag_play-2]: process has finished cleanly" in text
    assert "[hypood_node-1]: process has finished cleanly" in text  # stopped by the launch, not left running
    assert launch.leftovers() == []


@pytest.mark.ros
@needs_launch
def test_real_replay_ends_when_the_node_fails(run_launch, tmp_path):
    record, tools = fake_tools(tmp_path)
    bag = write_bag(tmp_path / "bag")
    launch = run_launch("replay.launch.py", f"bag:={bag}", "topic:=/front/image_raw",
                        f"model:={tmp_path / 'missing.pt'}", "rviz:=false", **tools)
    assert launch.wait() == 1
    text = launch.text()
    assert text.splitlines()[-1] == ("[ERROR] [launch]: Caught exception in launch (see debug for traceback): "
                                     "hypood_node exited with status 1"), text
    assert not (record / "ros2.args").exists()  # the bag never started
    assert launch.leftovers() == []


@pytest.mark.ros
@needs_launch
def test_real_replay_compressed_camera_in_rviz(run_launch, tiny_checkpoint, tmp_path):
    record, tools = fake_tools(tmp_path, player_seconds=4.0, rviz=True)
    bag = write_bag(tmp_path / "bag", topic="/front/image_raw/compressed", compressed=True)
    params = params_yaml(tmp_path / "p.yaml", tiny_checkpoint, input_type="compressed")  # from the file only
    launch = run_launch("replay.launch.py", f"bag:={bag}", "topic:=/front/image_raw/compressed",
                        f"params_file:={params}", "namespace:=car", **tools)
    values = launched_node(launch, "/car", ("input_type", "use_sim_time"),
                           topics={"/front/image_raw/compressed", "/front/camera_info", "/clock"})
    assert values == {"input_type": "compressed", "use_sim_time": True}
    assert launch.wait() == 0, launch.text()
    args = (record / "rviz2.args").read_text().split()
    assert args[:4] == ["-d", args[1], "-f", "front_optical"]
    assert "image/compressed:=/front/image_raw/compressed" in args and "__ns:=/car" in args
    config = yaml.safe_load((record / "rviz2.config").read_text())
    camera = next(d for d in config["Visualization Manager"]["Displays"] if d["Name"] == "Camera")
    assert camera["Topic"]["Value"] == "image/compressed"
    assert not Path(args[1]).exists()  # the config written for this launch is removed at its end
    assert launch.leftovers() == []
