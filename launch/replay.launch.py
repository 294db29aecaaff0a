"""Replay a recorded drive through the node and watch it in RViz.

    ros2 launch hypood_ros replay.launch.py bag:=drive.mcap topic:=/front/image_raw model:=model.engine

Before anything starts, the bag, `ros2 bag` and (with rviz:=true) rviz2 are looked for: a missing one is one
line and exit status 1, with nothing started. The bag starts only once the node has logged its ready line
(its model loaded and warmed up), so no frame is published before anyone listens; `ros2 bag play --clock`
drives the node's and RViz's sim time. The launch ends when the player ends (exit status 0 when it
finished, 1 with its status in the last line when it failed) or when the node exits. RViz runs in the
node's namespace (its config names the topics relatively) with the fixed frame set to the camera's
frame_id, read from the bag's first frame unless given; with input_type compressed its camera display
uses the compressed transport. Arguments and the node's description: hypood_ros.launch_spec.
"""
import contextlib
import os
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import ExecuteProcess, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit, OnProcessIO, OnShutdown
from launch_ros.actions import Node

from hypood_ros.bags import first_frame_id
from hypood_ros.errors import ConfigError
from hypood_ros.launch_actions import dds_environment, declare, ends_launch, given, hypood_node
from hypood_ros.launch_spec import (
    REPLAY,
    effective,
    flag,
    player_command,
    replay_problems,
    rviz_config,
    rviz_kwargs,
    when_ready,
)


def rviz(values, frame):
    """RViz on the bag's clock, and (for a compressed camera) its config written for the time of the launch."""
    compressed = effective(values, "input_type") == "compressed"
    config = os.path.join(get_package_share_directory("hypood_ros"), "rviz", "hypood.rviz")
    actions = []
    if compressed:
        with open(config) as f:
            text = rviz_config(f.read(), compressed=True)
        fd, config = tempfile.mkstemp(prefix="hypood_", suffix=".rviz")
        with os.fdopen(fd, "w") as f:
            f.write(text)

        def remove(event, context, path=config):
            with contextlib.suppress(OSError):
                os.unlink(path)

        actions.append(RegisterEventHandler(OnShutdown(on_shutdown=remove)))
    return actions + [Node(**rviz_kwargs(values, config, frame, compressed))]


def start(context):
    values = given(context, REPLAY)
    problems = replay_problems(values)  # everything that can be checked, before any process starts
    if problems:
        raise ConfigError("; ".join(problems))
    camera_frame = first_frame_id(values["bag"], values["topic"])  # BagError unless the bag has frames on topic
    node = hypood_node(values, REPLAY)
    viewer = rviz(values, values["frame_id"] or camera_frame) if flag("rviz", values["rviz"]) else []
    play = ExecuteProcess(cmd=player_command(values), name="ros2_bag_play", output="screen")
    ready = when_ready([play])  # the node logs through rcutils (stderr); stdout is watched too
    return dds_environment(values["dds_profile"]) + [
        RegisterEventHandler(OnProcessIO(target_action=node, on_stdout=ready, on_stderr=ready)),
        RegisterEventHandler(OnProcessExit(target_action=play, on_exit=ends_launch("ros2 bag play"))),
        RegisterEventHandler(OnProcessExit(target_action=node, on_exit=ends_launch("hypood_node"))),
        node,
    ] + viewer


def generate_launch_description():
    return LaunchDescription(declare(REPLAY) + [OpaqueFunction(function=start)])
