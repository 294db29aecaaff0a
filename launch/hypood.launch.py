"""Launch the hypood node on a camera.

    ros2 launch hypood_ros hypood.launch.py camera:=/front/image_raw model:=/path/model.engine
    ros2 launch hypood_ros hypood.launch.py camera:=/front/image_raw params_file:=/path/front.yaml
    ros2 launch hypood_ros hypood.launch.py camera:=/front/image_raw model:=/path/model.pt lifecycle:=true

The arguments, their defaults and the node's description are in hypood_ros.launch_spec (shared with
replay.launch.py): node parameters given as arguments override `params_file`; those left empty are not
passed, so the params file's values (else the package defaults) apply. `camera_info` defaults to the
camera's sibling topic. `lifecycle:=true` starts the managed node instead, unconfigured.
`dds_profile` sets the Fast DDS profile for the node process. A node that fails
(a missing model, say) ends the launch with exit status 1.
"""
from launch import LaunchDescription
from launch.actions import OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit

from hypood_ros.launch_actions import dds_environment, declare, ends_launch, given, hypood_node
from hypood_ros.launch_spec import HYPOOD


def start(context):
    values = given(context, HYPOOD)
    node = hypood_node(values, HYPOOD)  # checks the values first: a bad one starts nothing
    return dds_environment(values["dds_profile"]) + [
        RegisterEventHandler(OnProcessExit(target_action=node, on_exit=ends_launch("hypood_node"))),
        node,
    ]


def generate_launch_description():
    return LaunchDescription(declare(HYPOOD) + [OpaqueFunction(function=start)])
