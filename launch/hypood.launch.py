"""Launch the hypood node on a camera topic.

    ros2 launch hypood_ros hypood.launch.py camera:=/front/image_raw model:=/path/model.engine
    ros2 launch hypood_ros hypood.launch.py camera:=/front/image_raw model:=/path/model.pt engine:=/path/model.pt2

Defaults come from the package's one parameter table (hypood_ros.defaults). `dds_profile` sets the Fast DDS
profile for the node process (config/fastdds_large_frames.xml unless the environment names one).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable, UnsetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from hypood_ros.dds import AUTO, resolve_profile, settings
from hypood_ros.defaults import BY_NAME, default


def dds_environment(context):
    """The profile variable for every process started after this (none: Fast DDS defaults)."""
    profile = resolve_profile(LaunchConfiguration("dds_profile").perform(context))
    return [SetEnvironmentVariable(name, value) if value is not None else UnsetEnvironmentVariable(name)
            for name, value in settings(profile).items()]


def text(name):
    """A string parameter from a launch argument (kept a string even when empty or numeric-looking)."""
    return ParameterValue(LaunchConfiguration(name), value_type=str)


def generate_launch_description():
    share = get_package_share_directory("hypood_ros")
    camera = LaunchConfiguration("camera")
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="/camera/image_raw",
                              description="camera image topic (the base topic when input_type is compressed)"),
        DeclareLaunchArgument("model", description=BY_NAME["model"].description),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "hypood.yaml"),
                              description="parameters YAML; the arguments below override it"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("backend", default_value=default("backend"), description=BY_NAME["backend"].description),
        DeclareLaunchArgument("engine", default_value=default("engine"), description=BY_NAME["engine"].description),
        DeclareLaunchArgument("device", default_value=default("device"), description=BY_NAME["device"].description),
        DeclareLaunchArgument("input_type", default_value=default("input_type"),
                              description=BY_NAME["input_type"].description),
        DeclareLaunchArgument("input_qos", default_value=default("input_qos"),
                              description=BY_NAME["input_qos"].description),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock instead of wall time"),
        DeclareLaunchArgument("dds_profile", default_value=AUTO,
                              description="Fast DDS profile XML for the node: a path, 'shipped', 'none' (Fast DDS "
                                          "defaults) or 'auto' (the one the environment names, else shipped)"),
        OpaqueFunction(function=dds_environment),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info",
                              description="CameraInfo of the camera (for ood/obstacles, ood/grid, ood/markers)"),
        DeclareLaunchArgument("odom", default_value="/odom", description="nav_msgs/Odometry (optional, for ood/grid)"),
        Node(
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
                    "engine": text("engine"),
                    "device": text("device"),
                    "input_type": text("input_type"),
                    "input_qos": text("input_qos"),
                    "use_sim_time": LaunchConfiguration("use_sim_time"),
                },
            ],
            remappings=[("image", camera), ("image/compressed", [camera, "/compressed"]),
                        ("camera_info", LaunchConfiguration("camera_info")), ("odom", LaunchConfiguration("odom"))],
        ),
    ])
