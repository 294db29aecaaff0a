"""Launch the hypood node on a camera topic.

    ros2 launch hypood_ros hypood.launch.py camera:=/front/image_raw model:=/path/model.engine
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("hypood_ros")
    camera = LaunchConfiguration("camera")
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="/camera/image_raw",
                              description="camera image topic (the base topic when input_type is compressed)"),
        DeclareLaunchArgument("model", description="checkpoint (.pt), ONNX (.onnx) or TensorRT engine (.engine)"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "hypood.yaml")),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("backend", default_value="", description="torch | onnxruntime | tensorrt (default: by extension)"),
        DeclareLaunchArgument("device", default_value="cuda"),
        DeclareLaunchArgument("input_type", default_value="raw", description="raw | compressed"),
        Node(
            package="hypood_ros",
            executable="hypood_node",
            name="hypood",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            parameters=[
                LaunchConfiguration("params_file"),
                {
                    "model": LaunchConfiguration("model"),
                    "backend": LaunchConfiguration("backend"),
                    "device": LaunchConfiguration("device"),
                    "input_type": LaunchConfiguration("input_type"),
                },
            ],
            remappings=[("image", camera), ("image/compressed", [camera, "/compressed"])],
        ),
    ])
