"""Replay a recorded drive through the node and watch it in RViz.

    ros2 launch hypood_ros replay.launch.py bag:=drive.mcap topic:=/front/image_raw model:=model.engine

The bag starts only once the node has logged its ready line (its model loaded and warmed up), so no
frame is published before anyone listens; `ros2 bag play --clock` drives the node's and RViz's sim time.
RViz runs in the node's namespace (its config names the topics relatively) with the fixed frame set to
the camera's frame_id, read from the bag's first frame unless given.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
    UnsetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessIO
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from hypood_ros.bags import first_frame_id
from hypood_ros.dds import AUTO, resolve_profile, settings
from hypood_ros.defaults import BY_NAME, default
from hypood_ros.node.replay import READY_MARK  # how the node's start-up line begins

CLOCK_HZ = "40"


def dds_environment(context):
    """The profile variable for every process started after this (none: Fast DDS defaults)."""
    profile = resolve_profile(LaunchConfiguration("dds_profile").perform(context))
    return [SetEnvironmentVariable(name, value) if value is not None else UnsetEnvironmentVariable(name)
            for name, value in settings(profile).items()]


def text(name):
    """A string parameter from a launch argument (kept a string even when empty or numeric-looking)."""
    return ParameterValue(LaunchConfiguration(name), value_type=str)


def when_ready(actions):
    """An OnProcessIO callback that returns `actions` once, at the first output line with READY_MARK."""
    started = []

    def on_output(event):
        if not started and READY_MARK in event.text.decode(errors="replace"):
            started.append(True)
            return actions
        return None

    return on_output


def rviz(context):
    frame = LaunchConfiguration("frame_id").perform(context) or first_frame_id(
        LaunchConfiguration("bag").perform(context), LaunchConfiguration("topic").perform(context))
    share = get_package_share_directory("hypood_ros")
    return [Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", os.path.join(share, "rviz", "hypood.rviz")] + (["-f", frame] if frame else []),
        parameters=[{"use_sim_time": True}],
        remappings=[("image", LaunchConfiguration("topic"))],  # the camera, as the node sees it
        condition=IfCondition(LaunchConfiguration("rviz")),
    )]


def generate_launch_description():
    share = get_package_share_directory("hypood_ros")
    topic = LaunchConfiguration("topic")
    hypood = Node(
        package="hypood_ros",
        executable="hypood_node",
        name="hypood",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model": text("model"),
                "backend": text("backend"),
                "device": text("device"),
                "input_type": text("input_type"),
                "input_qos": text("input_qos"),
                "use_sim_time": True,
            },
        ],
        remappings=[("image", topic), ("image/compressed", topic), ("camera_info", LaunchConfiguration("camera_info")),
                    ("odom", LaunchConfiguration("odom"))],
    )
    play = ExecuteProcess(  # started by the handler below, once the node is ready
        cmd=["ros2", "bag", "play", LaunchConfiguration("bag"), "--rate", LaunchConfiguration("rate"),
             "--topics", topic, LaunchConfiguration("camera_info"), LaunchConfiguration("odom"), "--clock", CLOCK_HZ],
        output="screen",
    )
    start_play = when_ready([play])  # the node logs through rcutils (stderr); stdout is watched too
    return LaunchDescription([
        DeclareLaunchArgument("bag", description="rosbag2 bag (.db3 / .mcap or its directory)"),
        DeclareLaunchArgument("topic", default_value="/camera/image_raw",
                              description="image topic in the bag (Image; CompressedImage with input_type compressed)"),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info",
                              description="CameraInfo topic in the bag (for the obstacle outputs)"),
        DeclareLaunchArgument("odom", default_value="/odom", description="Odometry topic in the bag (optional)"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback speed factor"),
        DeclareLaunchArgument("model", description="checkpoint (.pt), ONNX (.onnx) or TensorRT engine (.engine)"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "hypood.yaml"),
                              description="parameters YAML; the arguments below override it"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node, its topics and RViz"),
        DeclareLaunchArgument("backend", default_value=default("backend"), description=BY_NAME["backend"].description),
        DeclareLaunchArgument("device", default_value=default("device"), description=BY_NAME["device"].description),
        DeclareLaunchArgument("input_type", default_value=default("input_type"),
                              description=BY_NAME["input_type"].description),
        DeclareLaunchArgument("input_qos", default_value=default("input_qos"),
                              description=BY_NAME["input_qos"].description),
        DeclareLaunchArgument("dds_profile", default_value=AUTO,
                              description="Fast DDS profile XML for the node, the player and RViz: a path, 'shipped', "
                                          "'none' (Fast DDS defaults) or 'auto' (the environment's, else shipped)"),
        DeclareLaunchArgument("frame_id", default_value="",
                              description="RViz fixed frame (default: the frame_id of the bag's first frame)"),
        DeclareLaunchArgument("rviz", default_value="true", description="start RViz with the shipped config"),
        OpaqueFunction(function=dds_environment),
        hypood,
        RegisterEventHandler(OnProcessIO(target_action=hypood, on_stdout=start_play, on_stderr=start_play)),
        OpaqueFunction(function=rviz),
    ])
