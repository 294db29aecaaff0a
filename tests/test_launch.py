"""What can be checked of the launch file, RViz config and package metadata without `launch` installed."""
import ast
import configparser
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from hypood_ros.node.parameters import PARAMS

REPO = Path(__file__).resolve().parents[1]


def launch_calls(path):
    tree = ast.parse(path.read_text())
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]


def keyword(call, name):
    return next(k.value for k in call.keywords if k.arg == name)


def test_launch_file_names_a_real_executable_and_parameters():
    calls = launch_calls(REPO / "launch" / "hypood.launch.py")
    node = next(c for c in calls if c.func.id == "Node")
    assert ast.literal_eval(keyword(node, "package")) == "hypood_ros"
    assert ast.literal_eval(keyword(node, "executable")) == "hypood_node"
    assert ast.literal_eval(keyword(node, "name")) == "hypood"
    setup = (REPO / "setup.py").read_text()
    assert '"hypood_node = hypood_ros.node.hypood_node:main"' in setup
    params = keyword(node, "parameters")
    overrides = next(e for e in params.elts if isinstance(e, ast.Dict))
    declared = {p.name for p in PARAMS}
    for key in overrides.keys:
        assert ast.literal_eval(key) in declared
    remaps = [ast.literal_eval(e.elts[0]) for e in keyword(node, "remappings").elts]
    assert remaps == ["image", "image/compressed"]  # the node's relative input topics
    args = {ast.literal_eval(c.args[0]) for c in calls if c.func.id == "DeclareLaunchArgument"}
    assert {"camera", "model", "params_file", "namespace", "backend"} <= args


def test_replay_launch_file():
    calls = launch_calls(REPO / "launch" / "replay.launch.py")
    nodes = [c for c in calls if c.func.id == "Node"]
    hypood = next(n for n in nodes if ast.literal_eval(keyword(n, "package")) == "hypood_ros")
    assert ast.literal_eval(keyword(hypood, "executable")) == "hypood_node"
    overrides = next(e for e in keyword(hypood, "parameters").elts if isinstance(e, ast.Dict))
    assert {ast.literal_eval(k) for k in overrides.keys} <= {p.name for p in PARAMS}
    rviz = next(n for n in nodes if ast.literal_eval(keyword(n, "package")) == "rviz2")
    assert "hypood.rviz" in ast.unparse(keyword(rviz, "arguments"))
    play = next(c for c in calls if c.func.id == "ExecuteProcess")
    assert ast.unparse(keyword(play, "cmd")).startswith("['ros2', 'bag', 'play'")
    args = {ast.literal_eval(c.args[0]) for c in calls if c.func.id == "DeclareLaunchArgument"}
    assert {"bag", "topic", "rate", "model", "rviz"} <= args


def test_params_file_covers_exactly_the_declared_parameters():
    data = yaml.safe_load((REPO / "config" / "hypood.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert set(values) == {p.name for p in PARAMS}
    for p in PARAMS:
        assert type(values[p.name]) is type(p.default), p.name


def test_rviz_config_shows_the_outputs():
    data = yaml.safe_load((REPO / "rviz" / "hypood.rviz").read_text())
    topics = {d["Topic"]["Value"] for d in data["Visualization Manager"]["Displays"]}
    assert {"/semantic/color", "/ood/score", "/ood/overlay"} <= topics


def test_package_metadata():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "hypood_ros"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.iter("exec_depend")}
    assert {"rclpy", "sensor_msgs", "diagnostic_msgs", "launch_ros"} <= deps
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg["install"]["install_scripts"] == "$base/lib/hypood_ros"  # where `ros2 run` looks
    assert (REPO / "resource" / "hypood_ros").is_file()
    link = REPO / "ros2_ws" / "src" / "hypood_ros"
    assert link.is_symlink() and link.resolve() == REPO
