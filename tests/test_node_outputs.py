"""The outputs beside the images, over real DDS: camera_info with each frame's header, lossless PNG masks,
ROS 2's QoS override parameters, and the class metadata topics."""
import time

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from hypood_ros.png import decode_png
from ros_harness import NodeProcess, Peer, random_domain

pytestmark = pytest.mark.ros

SIDE = {"ood/camera_info": CameraInfo, "semantic/camera_info": CameraInfo,
        "ood/mask/compressed": CompressedImage, "semantic/labels/compressed": CompressedImage}
K = [100.0, 0.0, 79.5, 0.0, 100.0, 59.5, 0.0, 0.0, 1.0]


def as_array(msg):
    return np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.width)


def camera_info(sec, width=160, height=120):
    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob", d=[-0.1, 0.01, 0.0, 0.0, 0.0], k=K,
                     r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], p=K[:3] + [0.0] + K[3:6] + [0.0] + K[6:] + [0.0])
    msg.header.stamp.sec, msg.header.frame_id = sec, "front_camera"
    return msg


@pytest.fixture(scope="module")
def running(tiny_checkpoint):
    """The node with the PNG outputs on; its image subscription asks for reliable frames (input_qos) and a QoS
    override makes it best effort; another override makes ood/overlay best effort."""
    domain = random_domain()
    node = NodeProcess(["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=56", "-p", "input_width:=112",
                        "-p", "diagnostics_period:=0.2", "-p", "roi:=none", "-p", "publish_compressed_labels:=true",
                        "-p", "publish_compressed_mask:=true", "-p", "input_qos:=reliable",
                        "-p", "qos_overrides./image.subscription.reliability:=best_effort",
                        "-p", "qos_overrides./ood/overlay.publisher.reliability:=best_effort"], domain)
    peer = None
    try:
        node.wait_ready()
        peer = Peer(domain)
        best_effort = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        peer.best_effort = peer.node.create_publisher(Image, "image", best_effort)
        peer.info = peer.node.create_publisher(CameraInfo, "camera_info", best_effort)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        for topic, kind in SIDE.items():
            peer.node.create_subscription(kind, topic, lambda m, t=topic: peer._store(t, m), reliable)
        peer.wait_connected(peer.best_effort)
        deadline = time.monotonic() + 20
        while not all(peer.node.count_publishers(t) for t in SIDE) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield node, peer
    finally:
        if peer is not None:
            peer.close()
        node.stop()


def side_for(peer, sec):
    with peer.lock:
        return {t: m for t in SIDE for _, m in peer.received[t] if m.header.stamp.sec == sec}


def send(peer, rgb, sec, with_info=True, need=tuple(SIDE)):
    msg = peer.image(rgb, sec=sec, frame_id="front_camera")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if with_info:
            peer.info.publish(camera_info(sec))
            time.sleep(0.05)
        peer.best_effort.publish(msg)  # best effort: only the override lets the node take it
        until = time.monotonic() + 3
        while time.monotonic() < until:
            raw, side = peer.outputs_for(sec), side_for(peer, sec)
            if "ood/mask" in raw and all(t in side for t in need):
                return raw, side
            time.sleep(0.02)
    raise AssertionError(f"no answer to stamp {sec}: got {sorted(side_for(peer, sec))}")


def test_camera_info_beside_the_outputs_with_their_header(running):
    _, peer = running
    raw, side = send(peer, np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8), sec=301)
    mask = raw["ood/mask"]
    for topic in ("ood/camera_info", "semantic/camera_info"):
        info = side[topic]
        assert info.header == mask.header and info.header.frame_id == "front_camera"
        assert (info.width, info.height) == (mask.width, mask.height) == (160, 120)
        assert list(info.k) == K and info.distortion_model == "plumb_bob" and list(info.d)[0] == -0.1


def test_a_frame_without_camera_info_gets_none(running):
    _, peer = running
    before = int(peer.wait_diagnostics(lambda d: "camera_info_missing" in d)["camera_info_missing"])
    raw, side = send(peer, np.zeros((120, 160, 3), np.uint8), sec=9001, with_info=False,
                     need=("ood/mask/compressed",))
    time.sleep(0.5)
    assert not any(t.endswith("camera_info") for t in side_for(peer, 9001))
    values = peer.wait_diagnostics(lambda d: int(d["camera_info_missing"]) > before)
    assert int(values["camera_info_out"]) >= 1


def test_png_outputs_decode_to_the_raw_images_bit_for_bit(running):
    _, peer = running
    rgb = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    raw, _ = send(peer, rgb, sec=401)
    score = np.frombuffer(bytes(raw["ood/score"].data), dtype=np.float32)
    (result,) = peer.set_parameters(threshold=float(np.median(score)))  # a mask with both values
    assert result.successful
    raw, side = send(peer, rgb, sec=402)
    for name, topic in (("ood/mask", "ood/mask/compressed"), ("semantic/labels", "semantic/labels/compressed")):
        packed = side[topic]
        assert packed.format == "mono8; png compressed " and packed.header == raw[name].header
        assert bytes(packed.data[:8]) == b"\x89PNG\r\n\x1a\n"
        np.testing.assert_array_equal(decode_png(bytes(packed.data)), as_array(raw[name]))
        assert len(packed.data) < len(raw[name].data)
    mask = as_array(raw["ood/mask"])
    assert 0.2 < (mask > 0).mean() < 0.8
    assert len(np.unique(as_array(raw["semantic/labels"]))) > 1


def test_qos_overrides_reach_the_subscription_and_a_publisher(running):
    node, peer = running
    assert "listening on /image (best_effort, depth 5)" in node.ready_line
    (sub,) = peer.node.get_subscriptions_info_by_topic("/image")
    assert sub.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT  # input_qos asked for reliable
    (overlay,) = peer.node.get_publishers_info_by_topic("/ood/overlay")
    (mask,) = peer.node.get_publishers_info_by_topic("/ood/mask")
    assert overlay.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    assert mask.qos_profile.reliability == ReliabilityPolicy.RELIABLE  # output_reliability, not overridden
    values = peer.parameter_call("get_parameters", ["qos_overrides./image.subscription.reliability"]).values
    assert values[0].string_value == "best_effort"


def test_class_metadata_json_and_label_info_when_vision_msgs_is_there(running):
    _, peer = running
    assert peer.node.count_publishers("classes") == 1
    try:
        from vision_msgs.msg import LabelInfo
    except ImportError:  # no vision_msgs wheel here: no LabelInfo topic (the message is tested with a stand-in)
        assert peer.node.count_publishers("semantic/label_info") == 0
        return
    got = []
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    latched.durability = 1  # transient local
    peer.node.create_subscription(LabelInfo, "semantic/label_info", got.append, latched)
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got and got[0].class_map[0].class_name == "road"
    assert String  # the JSON topic stays beside it


def test_a_bad_qos_override_is_one_line(tiny_checkpoint):
    node = NodeProcess(["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=56", "-p", "input_width:=112",
                        "-p", "qos_overrides./image.subscription.reliability:=sometimes"], random_domain())
    code = node.proc.wait(timeout=120)
    node._reader.join(timeout=5)
    assert code == 1, node.lines
    assert not any("Traceback" in line for line in node.lines), node.lines
    errors = [line for line in node.lines if "error" in line.lower()]
    assert len(errors) == 1 and "QoS override of the subscription on /image" in errors[0], node.lines
