"""What can be checked of the launch files and the RViz config without `launch` installed (it needs a ROS install).

The launch files are parsed, not run: these tests check the names they use against the package (parameters,
executables, defaults table, the node's ready line) and run the one callback that has no launch types in it.
"""
import ast
from pathlib import Path

import numpy as np
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer

from hypood_ros.bags import first_frame_id, typestore
from hypood_ros.defaults import PARAMS
from hypood_ros.node.replay import READY_MARK

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = ("hypood.launch.py", "replay.launch.py")
COMMON_ARGS = {"model", "params_file", "namespace", "backend", "device", "input_type", "input_qos", "dds_profile"}


def tree(name):
    return ast.parse((REPO / "launch" / name).read_text())


def calls(node, name=None):
    return [n for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
            and (name is None or n.func.id == name)]


def keyword(call, name):
    return next(k.value for k in call.keywords if k.arg == name)


def declared(name):
    return {ast.literal_eval(c.args[0]): c for c in calls(tree(name), "DeclareLaunchArgument")}


def hypood_node(name):
    node = next(c for c in calls(tree(name), "Node") if ast.literal_eval(keyword(c, "package")) == "hypood_ros")
    assert ast.literal_eval(keyword(node, "executable")) == "hypood_node"
    assert ast.literal_eval(keyword(node, "name")) == "hypood"
    assert ast.unparse(keyword(node, "namespace")) == "LaunchConfiguration('namespace')"
    return node


def overrides(node):
    values = next(e for e in keyword(node, "parameters").elts if isinstance(e, ast.Dict))
    return {ast.literal_eval(k): v for k, v in zip(values.keys, values.values)}


def test_both_launch_files_take_the_common_arguments_with_defaults_from_the_table():
    names = {p.name for p in PARAMS}
    for name in LAUNCH_FILES:
        args = declared(name)
        assert COMMON_ARGS <= set(args), name
        for arg, call in args.items():
            if arg in names and arg != "model":  # model has no default: it must be given
                assert ast.unparse(keyword(call, "default_value")) == f"default('{arg}')", (name, arg)
        node = hypood_node(name)
        values = overrides(node)
        assert set(values) <= names | {"use_sim_time"}, name
        for param in ("model", "backend", "device", "input_type", "input_qos"):
            assert ast.unparse(values[param]) == f"text('{param}')", (name, param)  # a string even when empty
        remaps = [ast.literal_eval(e.elts[0]) for e in keyword(node, "remappings").elts]
        assert remaps[:2] == ["image", "image/compressed"]  # the node's relative input topics
        # The DDS profile is set (or cleared) before any process starts.
        description = next(c for c in calls(tree(name), "LaunchDescription")).args[0]
        entries = [ast.unparse(e) for e in description.elts]
        profile = entries.index("OpaqueFunction(function=dds_environment)")
        assert all(not e.startswith(("Node(", "hypood", "OpaqueFunction(function=rviz")) for e in entries[:profile])
    assert "camera" in declared("hypood.launch.py") and "use_sim_time" in declared("hypood.launch.py")


def test_replay_starts_the_bag_once_the_node_is_ready_with_sim_time():
    module = tree("replay.launch.py")
    node = hypood_node("replay.launch.py")
    assert ast.literal_eval(overrides(node)["use_sim_time"]) is True
    play = next(c for c in calls(module, "ExecuteProcess"))
    cmd = ast.unparse(keyword(play, "cmd"))
    assert cmd.startswith("['ros2', 'bag', 'play'") and "'--clock', CLOCK_HZ" in cmd
    handler = next(c for c in calls(module, "OnProcessIO"))
    assert ast.unparse(handler) == ("OnProcessIO(target_action=hypood, on_stdout=start_play, "
                                    "on_stderr=start_play)")
    assert "start_play = when_ready([play])" in ast.unparse(module)
    description = next(c for c in calls(module, "LaunchDescription")).args[0]
    assert not any(isinstance(e, ast.Name) and e.id == "play" for e in description.elts)  # only the handler starts it
    assert {"bag", "topic", "rate", "frame_id", "rviz"} <= set(declared("replay.launch.py"))


def test_the_ready_callback_fires_once_on_the_nodes_ready_line():
    module = tree("replay.launch.py")
    function = next(n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "when_ready")
    scope = {"READY_MARK": READY_MARK}
    exec(compile(ast.Module(body=[function], type_ignores=[]), "replay.launch.py", "exec"), scope)

    class Line:  # what launch's ProcessIO events carry: the raw bytes of the output
        def __init__(self, text):
            self.text = text.encode()

    start = scope["when_ready"](["play"])
    assert start(Line("[INFO] [hypood]: loading model.pt")) is None
    line = f"[INFO] [1700000000.1] [hypood]: {READY_MARK} torch backend on cpu, input 56x112"
    assert start(Line(line)) == ["play"]
    assert start(Line(line)) is None  # never twice


def test_rviz_follows_the_namespace_and_the_cameras_frame():
    module = tree("replay.launch.py")
    rviz = next(c for c in calls(module, "Node") if ast.literal_eval(keyword(c, "package")) == "rviz2")
    assert ast.unparse(keyword(rviz, "namespace")) == "LaunchConfiguration('namespace')"
    assert "('image', LaunchConfiguration('topic'))" in ast.unparse(keyword(rviz, "remappings"))
    arguments = ast.unparse(keyword(rviz, "arguments"))
    assert "hypood.rviz" in arguments and "'-f', frame" in arguments
    function = next(n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "rviz")
    assert "first_frame_id(" in ast.unparse(function)


def test_rviz_config_uses_relative_topics():
    data = yaml.safe_load((REPO / "rviz" / "hypood.rviz").read_text())
    displays = data["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"] for d in displays}
    assert {"image", "semantic/color", "ood/score", "ood/mask", "ood/overlay"} <= topics
    assert not any(t.startswith("/") for t in topics)
    assert all(d["Topic"]["Reliability Policy"] == "Best Effort" for d in displays)  # matches either publisher
    assert data["Visualization Manager"]["Global Options"]["Fixed Frame"] != "camera"


def test_first_frame_id_reads_the_bag(tmp_path):
    store = typestore()
    image, header, time = (store.types[t] for t in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                     "builtin_interfaces/msg/Time"))
    with Writer(tmp_path / "bag", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/front/image_raw", "sensor_msgs/msg/Image", typestore=store)
        for i, frame in enumerate(("front_optical", "other")):
            msg = image(header=header(stamp=time(sec=i, nanosec=0), frame_id=frame), height=1, width=1,
                        encoding="mono8", is_bigendian=0, step=1, data=np.zeros(1, np.uint8))
            writer.write(conn, i + 1, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    assert first_frame_id(tmp_path / "bag", "/front/image_raw") == "front_optical"


def test_readme_documents_every_launch_argument():
    readme = (REPO / "README.md").read_text()
    for name in LAUNCH_FILES:
        for arg in declared(name):
            assert f"| `{arg}` |" in readme, (name, arg)


def test_params_file_covers_exactly_the_declared_parameters():
    data = yaml.safe_load((REPO / "config" / "hypood.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert set(values) == {p.name for p in PARAMS}
    for p in PARAMS:
        assert type(values[p.name]) is type(p.default), p.name


def test_obstacle_inputs_are_remapped_and_the_obstacle_outputs_shown():
    for name in LAUNCH_FILES:
        remaps = [ast.literal_eval(e.elts[0]) for e in keyword(hypood_node(name), "remappings").elts]
        assert remaps[2:] == ["camera_info", "odom"], name
        assert {"camera_info", "odom"} <= set(declared(name)), name
    play = ast.unparse(keyword(next(c for c in calls(tree("replay.launch.py"), "ExecuteProcess")), "cmd"))
    assert "LaunchConfiguration('camera_info'), LaunchConfiguration('odom')" in play
    data = yaml.safe_load((REPO / "rviz" / "hypood.rviz").read_text())
    classes = {d["Topic"]["Value"]: d["Class"] for d in data["Visualization Manager"]["Displays"]}
    assert classes["ood/obstacles"] == "rviz_default_plugins/PointCloud2"
    assert classes["ood/grid"] == "rviz_default_plugins/Map"
    assert classes["ood/markers"] == "rviz_default_plugins/MarkerArray"
