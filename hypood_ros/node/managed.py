"""The managed (lifecycle) variant of the `hypood` node, for vehicles that bring perception up in order.

The same node class and code as the plain node, driven by the lifecycle transitions instead of its
constructor: configure loads the model (and builds or checks the engine) and warms it up; activate
creates the outputs, starts the inference thread and subscribes to the camera; deactivate stops and
removes them, keeping the model loaded; cleanup frees the model; shutdown does what is left of both.
A configure that fails (a missing or corrupt model, an absent device) is one error line in the log and
the node stays unconfigured, ready for another try. Parameters are declared at start as in the plain node.

    ros2 run hypood_ros hypood_lifecycle_node --ros-args -p model:=model.pt
    ros2 lifecycle set /hypood configure && ros2 lifecycle set /hypood activate
"""
from __future__ import annotations

import sys
from typing import List, Optional

from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn

from hypood_ros.errors import HypoodError
from hypood_ros.node import hypood_node
from hypood_ros.node.hypood_node import HypoodNode, first_line


class HypoodLifecycleNode(LifecycleNodeMixin, HypoodNode):
    """HypoodNode with rclpy's lifecycle state machine and services (`/hypood/change_state`, `get_state`, ...)."""

    def __init__(self, argv: Optional[List[str]] = None, **kwargs) -> None:
        HypoodNode.__init__(self, argv, managed=True, **kwargs)
        LifecycleNodeMixin.__init__(self)
        self.get_logger().info("unconfigured: configure loads the model, activate starts the outputs")

    def _transition(self, what: str, step) -> TransitionCallbackReturn:
        try:
            step()
        except HypoodError as exc:
            self.get_logger().error(f"{what} failed: {first_line(exc)}")
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # anything else a backend raises: one line, and the state is kept
            self.get_logger().error(f"{what} failed: {type(exc).__name__}: {first_line(exc)}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        self.load()
        backend = self._pipeline.backend
        shape = backend.input_shape
        self.get_logger().info(f"configured: {backend.name} backend on {backend.device}, input "
                               f"{shape[2]}x{shape[3]} ({self._input_source}); activate to start")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("configure", self._configure)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = self._transition("activate", self.open)
        if result != TransitionCallbackReturn.SUCCESS:
            self.close()
            return result
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = self._transition("deactivate", self.close)
        if result == TransitionCallbackReturn.SUCCESS:
            self.get_logger().info(f"inactive: {self.summary()}; the model stays loaded")
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = self._transition("cleanup", self.unload)
        if result == TransitionCallbackReturn.SUCCESS:
            self.get_logger().info("unconfigured: the model is freed")
        return result

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("shutdown", self.stop)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._transition("error recovery", self.stop)
        return TransitionCallbackReturn.SUCCESS  # back to unconfigured


def main(args=None) -> int:
    return hypood_node.main(args, node_class=HypoodLifecycleNode)


if __name__ == "__main__":
    sys.exit(main())
