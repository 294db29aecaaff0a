"""Replay a recorded drive through the node and watch it in RViz.

    ros2 launch hypood_ros replay.launch.py bag:=drive.mcap topic:=/front/image_raw model:=model.engine
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("hypood_ros")
    topic = LaunchConfiguration("topic")
    return LaunchDescription([
        DeclareLaunchArgument("bag", description="rosbag2 bag (.db3 / .mcap or its directory)"),
        DeclareLaunchArgument("topic", default_value="/camera/image_raw", description="image topic in the bag"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback speed factor"),
        DeclareLaunchArgument("model", description="checkpoint (.pt), ONNX (.onnx) or TensorRT engine (.engine)"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "hypood.yaml")),
        DeclareLaunchArgument("device", default_value="cuda"),
        DeclareLaunchArgument("input_type", default_value="raw", description="raw | compressed"),
        DeclareLaunchArgument("rviz", default_value="true", description="start RViz with the shipped config"),
        ExecuteProcess(
            cmd=["ros2", "bag", "play", LaunchConfiguration("bag"), "--rate", LaunchConfiguration("rate"),
                 "--topics", topic],
            output="screen",
        ),
        Node(
            package="hypood_ros",
            executable="hypood_node",
            name="hypood",
            output="screen",
            parameters=[
                LaunchConfiguration("params_file"),
                {
                    "model": LaunchConfiguration("model"),
                    "device": LaunchConfiguration("device"),
                    "input_type": LaunchConfiguration("input_type"),
                },
            ],
            remappings=[("image", topic), ("image/compressed", topic)],
        ),
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", os.path.join(share, "rviz", "hypood.rviz")],
            condition=IfCondition(LaunchConfiguration("rviz")),
        ),
    ])
