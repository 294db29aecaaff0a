"""The lifecycle node over its lifecycle services (real rclpy and DDS): configure loads the model, activate
starts the camera subscription and outputs, deactivate stops them with the model kept, cleanup frees it; a
configure with a bad model file is one error line and the node stays unconfigured."""
import time

import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from hypood_ros.model import save_checkpoint
from ros_harness import NodeProcess, Peer, random_domain

pytestmark = pytest.mark.ros

MANAGED = "hypood_ros.node.managed"


class Lifecycle:
    """Clients of /hypood/change_state and /hypood/get_state on the peer's node."""

    def __init__(self, peer):
        self.change = peer.node.create_client(ChangeState, "/hypood/change_state")
        self.get = peer.node.create_client(GetState, "/hypood/get_state")
        assert self.change.wait_for_service(timeout_sec=30) and self.get.wait_for_service(timeout_sec=30)

    @staticmethod
    def _call(client, request, timeout=120):
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert future.done(), f"{client.srv_name} timed out"
        return future.result()

    def state(self) -> str:
        return self._call(self.get, GetState.Request()).current_state.label

    def transition(self, transition_id) -> bool:
        return self._call(self.change, ChangeState.Request(transition=Transition(id=transition_id))).success


def lines_with(node, text):
    return [line for line in node.lines if text in line]


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def start(args):
    domain = random_domain()
    node = NodeProcess(args, domain, module=MANAGED)
    assert wait_until(lambda: lines_with(node, "unconfigured:") or node.proc.poll() is not None, 60), node.lines
    assert node.proc.poll() is None, node.lines
    return node, Peer(domain)


def test_transitions_start_and_stop_the_camera_and_keep_the_model(tiny_checkpoint):
    node, peer = start(["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=56", "-p", "input_width:=112"])
    try:
        life = Lifecycle(peer)
        assert life.state() == "unconfigured"
        assert peer.node.count_subscribers("/image") == 0 and peer.node.count_publishers("/ood/mask") == 0

        assert life.transition(Transition.TRANSITION_CONFIGURE)
        assert life.state() == "inactive" and len(lines_with(node, "]: configured:")) == 1
        assert peer.node.count_subscribers("/image") == 0 and not lines_with(node, "ready:")

        assert life.transition(Transition.TRANSITION_ACTIVATE)
        assert life.state() == "active" and len(lines_with(node, "ready:")) == 1
        peer.wait_connected(peer.raw)
        rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
        got = peer.send_and_wait(peer.image(rgb, sec=11))
        assert got["ood/mask"].header.stamp.sec == 11

        assert life.transition(Transition.TRANSITION_DEACTIVATE)
        assert life.state() == "inactive"
        assert wait_until(lambda: peer.node.count_subscribers("/image") == 0
                          and peer.node.count_publishers("/ood/mask") == 0), "the camera is still subscribed"
        assert len(lines_with(node, "the model stays loaded")) == 1

        assert life.transition(Transition.TRANSITION_ACTIVATE)  # no second load: configure ran once
        peer.wait_connected(peer.raw)
        assert peer.send_and_wait(peer.image(rgb, sec=12))["ood/mask"].header.stamp.sec == 12
        assert len(lines_with(node, "]: configured:")) == 1 and len(lines_with(node, "ready:")) == 2

        assert life.transition(Transition.TRANSITION_DEACTIVATE)
        assert life.transition(Transition.TRANSITION_CLEANUP)
        assert life.state() == "unconfigured" and lines_with(node, "the model is freed")
        assert not life.transition(Transition.TRANSITION_ACTIVATE)  # not possible from unconfigured
    finally:
        peer.close()
        code = node.stop()
    assert code == 0, node.lines
    assert not any("Traceback" in line for line in node.lines), node.lines


def test_a_failed_configure_leaves_the_node_unconfigured(tmp_path, tiny_model):
    model = tmp_path / "model.pt"
    model.write_bytes(b"not a checkpoint at all")
    node, peer = start(["-p", f"model:={model}", "-p", "input_height:=56", "-p", "input_width:=112"])
    try:
        life = Lifecycle(peer)
        assert not life.transition(Transition.TRANSITION_CONFIGURE)
        assert life.state() == "unconfigured" and node.proc.poll() is None
        errors = [line for line in node.lines if "ERROR" in line]
        assert len(errors) == 1 and "configure failed:" in errors[0] and str(model) in errors[0], node.lines
        assert not any("Traceback" in line for line in node.lines), node.lines
        assert peer.node.count_subscribers("/image") == 0

        save_checkpoint(tiny_model, model)  # the file fixed: the next configure takes it
        assert life.transition(Transition.TRANSITION_CONFIGURE)
        assert life.state() == "inactive"
    finally:
        peer.close()
        code = node.stop()
    assert code == 0, node.lines
    assert not any("Traceback" in line for line in node.lines), node.lines


def test_shutdown_from_active_stops_cleanly(tiny_checkpoint):
    node, peer = start(["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=56", "-p", "input_width:=112"])
    try:
        life = Lifecycle(peer)
        assert life.transition(Transition.TRANSITION_CONFIGURE) and life.transition(Transition.TRANSITION_ACTIVATE)
        assert life.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
        assert life.state() == "finalized"
    finally:
        peer.close()
        code = node.stop()
    assert code == 0, node.lines
    assert not any("Traceback" in line for line in node.lines), node.lines


def test_transitions_with_many_cameras(tiny_checkpoint):
    """A `cameras` list through the transitions: activate subscribes every camera, deactivate removes them all,
    a camera's pose changed at run time survives deactivate and activate, and configure again after cleanup
    finds its pose parameters already declared."""
    cameras = {"front": (60, 80), "rear": (48, 64)}
    node, peer = start(["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=56", "-p", "input_width:=112",
                        "-p", "cameras:=[front, rear]", "-p", "rear.camera_height:=2.0", "-p", "roi:=none"])
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    masks = {name: [] for name in cameras}
    images = {name: peer.node.create_publisher(Image, f"{name}/image", qos) for name in cameras}
    for name in cameras:
        peer.node.create_subscription(Image, f"{name}/ood/mask", masks[name].append, qos)

    def subscribed(count):
        return all(peer.node.count_subscribers(f"/{n}/image") == count
                   and peer.node.count_publishers(f"/{n}/ood/mask") == count
                   and peer.node.count_publishers(f"/{n}/ood/camera_info") == count for n in cameras)

    def answered(sec):
        """Every camera answers its frame of stamp `sec` (sent again until it does)."""
        for name, (h, w) in cameras.items():
            rgb = np.random.default_rng(sec).integers(0, 256, (h, w, 3), dtype=np.uint8)
            msg = peer.image(rgb, sec=sec, frame_id=f"{name}_optical")
            assert wait_until(lambda: images[name].publish(msg) or any(
                m.header.stamp.sec == sec and (m.height, m.width) == (h, w) for m in masks[name]), 30), name

    def rear_height():
        return peer.parameter_call("get_parameters", ["rear.camera_height"]).values[0].double_value

    try:
        life = Lifecycle(peer)
        assert life.transition(Transition.TRANSITION_CONFIGURE) and life.state() == "inactive"
        assert subscribed(0) and rear_height() == 2.0
        assert life.transition(Transition.TRANSITION_ACTIVATE)
        assert wait_until(lambda: subscribed(1)), "not every camera is subscribed"
        (ready,) = lines_with(node, "ready:")
        assert "listening on /front/image (best_effort, depth 5), /rear/image (best_effort, depth 5)" in ready
        answered(31)
        result = peer.parameter_call("set_parameters", [Parameter("rear.camera_height", value=2.5)]).results[0]
        assert result.successful, result.reason

        assert life.transition(Transition.TRANSITION_DEACTIVATE)
        assert wait_until(lambda: subscribed(0)), "a camera is still subscribed"
        assert life.transition(Transition.TRANSITION_ACTIVATE)
        assert wait_until(lambda: subscribed(1)) and rear_height() == 2.5
        answered(32)

        assert life.transition(Transition.TRANSITION_DEACTIVATE) and life.transition(Transition.TRANSITION_CLEANUP)
        assert life.transition(Transition.TRANSITION_CONFIGURE), node.lines  # the pose parameters exist already
        assert life.transition(Transition.TRANSITION_ACTIVATE) and rear_height() == 2.5
        answered(33)
    finally:
        peer.close()
        code = node.stop()
    assert code == 0, node.lines
    assert not any("Traceback" in line for line in node.lines), node.lines


def test_a_failed_activate_takes_back_what_it_made(tiny_checkpoint):
    """A bad QoS override on the second camera fails activate half way: one error line, the node stays
    inactive with none of the first camera's topics left behind, and the same activate fails the same way
    again (nothing half-made is in its way); deactivate is not needed before cleanup."""
    node, peer = start(["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=56", "-p", "input_width:=112",
                        "-p", "cameras:=[front, rear]", "-p", "roi:=none",
                        "-p", "qos_overrides./rear/ood/mask.publisher.reliability:=sometimes"])

    def on_graph():
        return [topic for topic, count in (
            ("/front/image", peer.node.count_subscribers("/front/image")),
            ("/front/ood/mask", peer.node.count_publishers("/front/ood/mask")),
            ("/front/ood/camera_info", peer.node.count_publishers("/front/ood/camera_info")),
            ("/rear/semantic/labels", peer.node.count_publishers("/rear/semantic/labels")),
            ("/diagnostics", peer.node.count_publishers("/diagnostics"))) if count]

    try:
        life = Lifecycle(peer)
        assert life.transition(Transition.TRANSITION_CONFIGURE)
        for attempt in (1, 2):
            assert not life.transition(Transition.TRANSITION_ACTIVATE)
            assert life.state() == "inactive" and node.proc.poll() is None
            errors = [line for line in node.lines if "ERROR" in line]
            assert len(errors) == attempt, node.lines
            assert "activate failed: QoS override of the publisher on /rear/ood/mask" in errors[-1], errors
            time.sleep(0.5)  # the graph has seen the node's publishers come and go
            assert on_graph() == [], on_graph()
        assert life.transition(Transition.TRANSITION_CLEANUP) and life.state() == "unconfigured"
    finally:
        peer.close()
        code = node.stop()
    assert code == 0, node.lines
    assert not any("Traceback" in line for line in node.lines), node.lines
