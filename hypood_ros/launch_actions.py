"""The launch-library side of launch/hypood.launch.py and launch/replay.launch.py: their arguments, the
values given, the DDS profile and the node, as launch actions. Imports `launch` and `launch_ros`, so only
the launch files use it; what these actions carry comes from hypood_ros.launch_spec (ROS-free, tested in CI).
"""
from __future__ import annotations

from typing import Dict, List

from launch.actions import DeclareLaunchArgument, EmitEvent, SetEnvironmentVariable, UnsetEnvironmentVariable
from launch.events import Shutdown
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from hypood_ros.dds import resolve_profile, settings
from hypood_ros.errors import HypoodError
from hypood_ros.launch_spec import LIFECYCLE_EXECUTABLE, arguments, exit_problem, node_kwargs


def declare(launch_file: str) -> List[DeclareLaunchArgument]:
    """The arguments of `launch_file` (launch_spec.HYPOOD or REPLAY); those without a default are required."""
    return [DeclareLaunchArgument(a.name, description=a.description,
                                  **({} if a.default is None else {"default_value": a.default}))
            for a in arguments(launch_file)]


def given(context, launch_file: str) -> Dict[str, str]:
    """Every argument of `launch_file` as the launch has it (the default where none was given)."""
    return {a.name: context.launch_configurations.get(a.name, "") for a in arguments(launch_file)}


def dds_environment(profile: str) -> list:
    """The Fast DDS profile variable for every process started after these actions (none: Fast DDS defaults)."""
    return [SetEnvironmentVariable(name, value) if value is not None else UnsetEnvironmentVariable(name)
            for name, value in settings(resolve_profile(profile)).items()]


def text(value: str) -> ParameterValue:
    """A string parameter (kept a string even when empty or numeric-looking)."""
    return ParameterValue(value, value_type=str)


def hypood_node(values: Dict[str, str], launch_file: str) -> Node:
    """The node (launch_spec.node_kwargs): launch_ros's LifecycleNode for the managed one (its transitions can
    then be driven by launch events); ConfigError for a bad value, before anything starts."""
    kwargs = node_kwargs(values, launch_file, string=text)
    if kwargs["executable"] == LIFECYCLE_EXECUTABLE:
        from launch_ros.actions import LifecycleNode

        return LifecycleNode(**kwargs)
    return Node(**kwargs)


def ends_launch(what: str):
    """OnProcessExit callback for a process the launch cannot go on without: a clean exit shuts the launch down
    (exit status 0), a failed one ends it with its status in the last line and exit status 1."""
    def on_exit(event, context):
        if context.is_shutdown:  # stopped by the shutdown itself (Ctrl-C, or the other process ended)
            return None
        problem = exit_problem(what, event.returncode)
        if problem is not None:
            raise HypoodError(problem)  # launch prints the line, stops everything and exits 1
        return [EmitEvent(event=Shutdown(reason=f"{what} finished"))]

    return on_exit
