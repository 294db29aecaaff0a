"""The node's obstacle outputs over real DDS: camera_info + image (+ odometry) in; cloud, grid, markers out."""
import contextlib
import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import pytest
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, PointCloud2
from visualization_msgs.msg import Marker, MarkerArray

from ros_harness import NodeProcess, Peer, random_domain

GEOMETRY = {"ood/obstacles": PointCloud2, "ood/grid": OccupancyGrid, "ood/markers": MarkerArray}
H, W = 120, 160


def camera_info(sec, fx=100.0, width=W, height=H, frame_id="front_camera_optical"):
    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    msg.header.stamp.sec, msg.header.frame_id = sec, frame_id
    msg.k = [fx, 0.0, width / 2, 0.0, fx, height / 2, 0.0, 0.0, 1.0]
    msg.d = [-0.05, 0.01, 0.0, 0.0, 0.0]
    msg.p = [fx, 0.0, width / 2, 0.0, 0.0, fx, height / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


class GeometryPeer(Peer):
    """The harness peer plus camera_info/odom publishers and subscriptions to the obstacle outputs."""

    def __init__(self, domain):
        super().__init__(domain)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.info = self.node.create_publisher(CameraInfo, "camera_info", qos)
        self.odom = self.node.create_publisher(Odometry, "odom", qos)
        for topic, kind in GEOMETRY.items():
            self.node.create_subscription(kind, topic, lambda m, t=topic: self._store(t, m), qos)

    def geometry_for(self, sec):
        with self.lock:
            return {t: m for t in GEOMETRY for _, m in self.received[t] if self._stamp(m) == sec}

    @staticmethod
    def _stamp(msg):
        header = msg.markers[0].header if isinstance(msg, MarkerArray) else msg.header
        return header.stamp.sec

    def send(self, sec, info=None, odom=None, want=tuple(GEOMETRY) + ("ood/mask",), timeout=30.0):
        """Publish camera_info / odometry / image with stamp `sec` until every `want` topic answered."""
        rgb = np.random.default_rng(sec).integers(0, 256, (H, W, 3), dtype=np.uint8)
        image = self.image(rgb, sec=sec, frame_id="front_camera_optical")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if info is not None:
                self.info.publish(info)
            if odom is not None:
                self.odom.publish(odom)
            time.sleep(0.05)
            self.raw.publish(image)
            until = time.monotonic() + 3.0
            while time.monotonic() < until:
                got = {**self.outputs_for(sec), **self.geometry_for(sec)}
                if all(t in got for t in want):
                    return got
                time.sleep(0.02)
        raise AssertionError(f"no answer on {want} to stamp {sec}")

    def obstacle_status(self, predicate, timeout=15.0, poke=None):
        """Wait for an obstacle status that satisfies `predicate`; `poke()` (e.g. one more frame) runs each second
        so that a status which depends on a frame after a slow DDS match still comes."""
        return self.status(lambda array: next((s for s in array.status if s.name.endswith(": obstacles")), None),
                           predicate, timeout, poke)

    def status(self, pick, predicate, timeout=15.0, poke=None):
        """The status `pick(last DiagnosticArray)` once it satisfies `predicate` (see obstacle_status)."""
        deadline, next_poke, status = time.monotonic() + timeout, time.monotonic(), None
        while time.monotonic() < deadline:
            if poke is not None and time.monotonic() >= next_poke:
                poke()
                next_poke = time.monotonic() + 1.0
            with self.lock:
                last = self.received["diagnostics"][-1][1] if self.received["diagnostics"] else None
            status = pick(last) if last else None
            if status is not None and predicate(status):
                return status
            time.sleep(0.05)
        raise AssertionError(f"diagnostics never matched; last: {status}")


@contextlib.contextmanager
def geometry_node(tiny_checkpoint):
    domain = random_domain()
    # threshold far below every score: the whole image is one obstacle whose ground contact is the bottom row
    node = NodeProcess(["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=56", "-p", "input_width:=112",
                        "-p", "diagnostics_period:=0.2", "-p", "threshold:=-10000.0", "-p", "roi:=none",
                        "-p", "base_frame:=base_link",
                        "-p", "pose_source:=parameters", "-p", "camera_height:=1.5", "-p", "camera_pitch:=0.3",
                        "-p", "camera_x:=2.0", "-p", "grid_size:=20.0", "-p", "grid_resolution:=0.25"], domain)
    peer = None
    try:
        node.wait_ready()
        peer = GeometryPeer(domain)
        peer.wait_connected(peer.raw)
        yield node, peer
    finally:
        if peer is not None:
            peer.close()
        node.stop()


def camera_transform(x, height, pitch, sec=0, parent="base_link", child="front_camera_optical"):
    """base_link <- optical frame of a camera `height` m up, `x` m forward, pitched `pitch` rad down, as TF
    gives it: the body pitch composed with the optical axes (z forward, x right, y down)."""
    from geometry_msgs.msg import TransformStamped

    x1, y1, z1, w1 = (0.0, np.sin(pitch / 2), 0.0, np.cos(pitch / 2))
    x2, y2, z2, w2 = (-0.5, 0.5, -0.5, 0.5)
    q = (w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2, w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
         w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2, w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2)
    msg = TransformStamped()
    msg.header.stamp.sec, msg.header.frame_id, msg.child_frame_id = sec, parent, child
    msg.transform.translation.x, msg.transform.translation.z = float(x), float(height)
    r = msg.transform.rotation
    r.x, r.y, r.z, r.w = (float(v) for v in q)
    return msg


def test_a_tf_transform_message_gives_the_parameter_pose():
    """The message the TF lookup returns (built here: tf2_ros itself is not installable on this machine)."""
    from hypood_ros.geometry import CameraPose
    from hypood_ros.node.obstacles import pose_from_transform

    pose = pose_from_transform(camera_transform(0.3, 1.4, 0.2))
    expected = CameraPose.from_parameters(height=1.4, pitch=0.2, x=0.3)
    assert np.allclose(pose.rotation, expected.rotation) and np.allclose(pose.translation, expected.translation)


def test_odometry_heading_and_stamp_matching():
    from geometry_msgs.msg import Quaternion

    from hypood_ros.node.obstacles import nearest, yaw_of

    for yaw in (-3.0, -0.3, 0.0, 0.3, 3.0):
        assert yaw_of(Quaternion(z=np.sin(yaw / 2), w=np.cos(yaw / 2))) == pytest.approx(yaw)
    history = [(10_000_000_000, "a"), (10_040_000_000, "b"), (10_200_000_000, "c")]
    assert nearest(history, 10_030_000_000, 0.05) == "b"
    assert nearest(history, 10_120_000_000, 0.05) is None  # nothing within 50 ms
    assert nearest([], 0, 1.0) is None


@pytest.mark.ros
@pytest.mark.skipif(importlib.util.find_spec("tf2_ros") is not None, reason="tf2_ros is installed here")
def test_pose_source_tf_without_tf2_ros_stops_the_node_with_one_line(tiny_checkpoint):
    node = NodeProcess(["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=56", "-p", "input_width:=112",
                        "-p", "pose_source:=tf"], random_domain())
    try:
        assert node.proc.wait(timeout=120) == 1
    finally:
        node.stop()
    assert any("tf2_ros is not installed" in line for line in node.lines), node.lines
    assert not any("Traceback" in line for line in node.lines)


def cloud_points(msg):
    assert [f.name for f in msg.fields] == ["x", "y", "z", "score"] and msg.point_step == 16
    return np.frombuffer(bytes(msg.data), dtype="<f4").reshape(msg.width, 4)


@pytest.mark.ros
@pytest.mark.slow
def test_obstacle_outputs_and_camera_info_problems(tiny_checkpoint):
    with geometry_node(tiny_checkpoint) as (node, peer):
        # no camera_info yet: masks still come, the obstacle status says why nothing else does
        got = peer.send(10, want=("ood/mask",))
        assert not peer.geometry_for(10)
        status = peer.obstacle_status(lambda s: "no camera_info" in s.message)
        assert status.level == b"\x01"

        got = peer.send(11, info=camera_info(11))
        cloud, grid, markers = got["ood/obstacles"], got["ood/grid"], got["ood/markers"]
        for msg in (cloud, grid, markers.markers[0]):
            assert msg.header.stamp.sec == 11
        assert cloud.header.frame_id == "base_link" and grid.header.frame_id == "base_link"
        assert all(m.header.frame_id == "base_link" for m in markers.markers)
        points = cloud_points(cloud)
        # bottom row of a camera 1.5 m up, pitched 0.3 rad down, 2 m ahead of base_link
        assert len(points) == W and np.isfinite(points).all() and (points[:, 2] == 0).all()
        near = 2.0 + 1.5 / np.tan(0.3 + np.arctan(0.6))
        assert np.median(points[:, 0]) == pytest.approx(near, rel=0.05)
        assert abs(np.median(points[:, 1])) < 0.05 and points[:, 1].min() < -1.0 < 1.0 < points[:, 1].max()
        kinds = [m.type for m in markers.markers]
        assert markers.markers[0].action == Marker.DELETEALL and kinds[1:] == [Marker.CUBE, Marker.TEXT_VIEW_FACING]
        assert markers.markers[2].text.endswith(" m")
        assert (grid.info.width, grid.info.height) == (80, 80) and grid.info.resolution == pytest.approx(0.25)
        cells = np.frombuffer(bytes(grid.data), dtype=np.int8).reshape(80, 80)
        assert set(np.unique(cells)) <= {-1, 0, 100} and (cells == 100).any()  # per frame: this frame's hits
        assert grid.info.origin.position.x == pytest.approx(-10.0)
        peer.obstacle_status(lambda s: s.level == b"\x00" and "1 obstacles" in s.message)

        # with odometry the grid is kept in the odometry frame
        odom = Odometry()
        odom.header.stamp.sec, odom.header.frame_id, odom.child_frame_id = 12, "odom", "base_link"
        odom.pose.pose.position.x, odom.pose.pose.orientation.w = 100.0, 1.0
        grid = peer.send(12, info=camera_info(12), odom=odom)["ood/grid"]
        assert grid.header.frame_id == "odom" and grid.info.origin.position.x == pytest.approx(90.0)

        # inconsistent camera_info: reported, masks keep coming, no obstacle outputs for those frames
        unsupported = camera_info(20)
        unsupported.distortion_model = "kannala_brandt"
        for sec, info, reason in ((13, camera_info(13, fx=0.0), "focal length"),
                                  (14, camera_info(14, width=640, height=480), "does not match"),
                                  (20, unsupported, "'kannala_brandt' is not supported")):
            got = peer.send(sec, info=info, want=("ood/mask", "ood/overlay"))
            status = peer.obstacle_status(lambda s, r=reason: r in s.message,
                                          poke=lambda s=sec, i=info: peer.send(s, info=i, want=("ood/mask",)))
            assert status.level == b"\x02"
            info.header.stamp.sec = sec + 100  # the same camera_info again: the same reason
            peer.send(sec + 100, info=info, want=("ood/mask",))
            time.sleep(0.5)
            assert reason in peer.obstacle_status(lambda s: s.level == b"\x02").message
            time.sleep(0.3)
            assert not peer.geometry_for(sec) and not peer.geometry_for(sec + 100)
        assert peer.send(15, info=camera_info(15))  # and recovers with a good one
        assert node.proc.poll() is None

        # switching the obstacle outputs off at run time
        (result,) = peer.set_parameters(publish_grid=False)
        assert result.successful
        got = peer.send(16, info=camera_info(16), want=("ood/obstacles", "ood/markers"))
        time.sleep(0.5)
        assert "ood/grid" not in peer.geometry_for(16)
        (result,) = peer.set_parameters(grid_resolution=0.5)
        assert not result.successful  # fixed at start


STAND_IN = Path(__file__).resolve().parent / "tf2_stand_in"


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tf2_ros") is not None, reason="the real tf2_ros is installed here")
def test_pose_source_tf_looks_up_the_pose_at_the_image_stamp(tiny_checkpoint, tmp_path):
    """pose_source:=tf through the tf2_ros API (tests/tf2_stand_in: tf2_ros is not on PyPI): the node asks for
    base_frame <- the image's frame at the image's stamp, uses that pose, and reports a failed lookup while the
    masks keep coming."""
    from geometry_msgs.msg import TransformStamped
    from rclpy.qos import DurabilityPolicy

    log = tmp_path / "lookups.txt"
    domain = random_domain()
    path = os.pathsep.join(p for p in (str(STAND_IN), os.environ.get("PYTHONPATH", "")) if p)
    node = NodeProcess(["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=56", "-p", "input_width:=112",
                        "-p", "diagnostics_period:=0.2", "-p", "threshold:=-10000.0", "-p", "roi:=none",
                        "-p", "base_frame:=base_link",
                        "-p", "pose_source:=tf", "-p", "publish_grid:=false"], domain,
                       env={"PYTHONPATH": path, "HYPOOD_TF_LOG": str(log)})
    peer = None
    try:
        node.wait_ready()
        peer = GeometryPeer(domain)
        tf = peer.node.create_publisher(TransformStamped, "/tf_stand_in",
                                        QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                                                   durability=DurabilityPolicy.TRANSIENT_LOCAL))
        peer.wait_connected(peer.raw)
        peer.wait_connected(peer.info)
        want = ("ood/obstacles", "ood/markers", "ood/mask")

        # no transform yet: the masks come, the obstacle status names the failed lookup (frames are sent again
        # while waiting: the first may beat camera_info to the node, which is a different, also reported, state)
        peer.send(30, info=camera_info(30), want=("ood/mask",))
        status = peer.obstacle_status(lambda s: "LookupException" in s.message,
                                      poke=lambda: peer.send(30, info=camera_info(30), want=("ood/mask",)))
        assert status.level == b"\x01" and "base_link" in status.message

        # the camera 1.5 m up, 2 m ahead, pitched 0.3 rad: the parameter test's pose, now from TF
        tf.publish(camera_transform(2.0, 1.5, 0.3, sec=31))
        time.sleep(0.5)
        points = cloud_points(peer.send(31, info=camera_info(31), want=want)["ood/obstacles"])
        near = 1.5 / np.tan(0.3 + np.arctan(0.6))
        assert np.median(points[:, 0]) == pytest.approx(2.0 + near, rel=0.05)

        # raised to 3 m from stamp 32 on: that frame's bottom row lands twice as far from the camera
        tf.publish(camera_transform(2.0, 3.0, 0.3, sec=32))
        time.sleep(0.5)
        points = cloud_points(peer.send(32, info=camera_info(32), want=want)["ood/obstacles"])
        assert np.median(points[:, 0]) == pytest.approx(2.0 + 2 * near, rel=0.05)
        assert node.proc.poll() is None
    finally:
        if peer is not None:
            peer.close()
        node.stop()
    lookups = [line.split() for line in log.read_text().splitlines()]
    assert ["base_link", "front_camera_optical", str(31 * 10**9)] in lookups
    assert ["base_link", "front_camera_optical", str(32 * 10**9)] in lookups


def main_status(peer, predicate, timeout=15.0, poke=None):
    """The node's own (first) diagnostics status once it satisfies `predicate`."""
    return peer.status(lambda array: array.status[0], predicate, timeout, poke)


@pytest.mark.ros
@pytest.mark.slow
def test_roi_corridor_limits_the_mask_and_falls_back_to_the_road_without_camera_info(tiny_checkpoint):
    from hypood_ros.geometry import CameraModel, CameraPose, corridor_mask

    domain = random_domain()
    node = NodeProcess(["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=56", "-p", "input_width:=112",
                        "-p", "diagnostics_period:=0.2", "-p", "threshold:=-10000.0", "-p", "roi:=corridor",
                        "-p", "pose_source:=parameters", "-p", "camera_height:=1.5", "-p", "camera_pitch:=0.3",
                        "-p", "corridor_half_width:=1.0", "-p", "corridor_min_range:=2.0", "-p", "max_range:=15.0"],
                       domain)
    peer = None
    try:
        node.wait_ready()
        peer = GeometryPeer(domain)
        peer.wait_connected(peer.raw)
        # no camera_info: the road region stands in, and the node's status says so
        peer.send(40, want=("ood/mask",))
        status = main_status(peer, lambda s: s.level == b"\x01" and "roi corridor" in s.message,
                             poke=lambda: peer.send(40, want=("ood/mask",)))
        assert "no camera_info received" in status.message and "road region is used" in status.message
        assert {kv.key: kv.value for kv in status.values}["roi"] == "corridor (road used)"
        # with camera_info: exactly the corridor of that camera and pose (everything scores above the threshold)
        info = camera_info(41)
        mask = np.frombuffer(bytes(peer.send(41, info=info)["ood/mask"].data), np.uint8).reshape(H, W) > 0
        camera = CameraModel.from_camera_info(W, H, list(info.k), list(info.d), info.distortion_model, list(info.p))
        expected = corridor_mask(camera, CameraPose.from_parameters(1.5, pitch=0.3), 1.0, 15.0, 1.0, 2.0)
        assert expected.any() and not expected.all()
        assert (mask == expected).all()
        status = main_status(peer, lambda s: s.level == b"\x00", poke=lambda: peer.send(42, info=camera_info(42)))
        values = {kv.key: kv.value for kv in status.values}
        assert values["roi"] == "corridor" and 0 < float(values["roi_share"]) < 1
    finally:
        if peer is not None:
            peer.close()
        node.stop()
