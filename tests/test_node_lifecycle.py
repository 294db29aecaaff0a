"""The node as a vehicle runs it, over real DDS: parameters from files and tools, classes, QoS, stopping."""
import json
import signal
import threading
import time

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import ParameterType
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from hypood_ros.model import build_segmentor, save_checkpoint
from hypood_ros.replay.replayer import cdr_stamp
from ros_harness import OUTPUTS, NodeProcess, Peer, random_domain

pytestmark = pytest.mark.ros


def camera_frame(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def as_array(msg):
    channels = 3 if msg.encoding == "rgb8" else 1
    dtype = np.float32 if msg.encoding == "32FC1" else np.uint8
    arr = np.frombuffer(bytes(msg.data), dtype=dtype).reshape(msg.height, msg.width, channels)
    return arr[:, :, 0] if channels == 1 else arr


class Started:
    """A node process in its own domain and a peer connected to it; closed in reverse order."""

    def __init__(self, args):
        self.domain = random_domain()
        self.node = NodeProcess(args, self.domain)
        self.peer = None
        try:
            self.node.wait_ready()
            self.peer = Peer(self.domain)
            self.peer.wait_connected(self.peer.raw)
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.peer is not None:
            self.peer.close()
        return self.node.stop()


@pytest.fixture(scope="module")
def twenty_class_checkpoint(tmp_path_factory):
    import torch

    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("ckpt20") / "twenty.pt"
    return save_checkpoint(build_segmentor("tiny", num_classes=20).eval(), path)


@pytest.fixture(scope="module")
def configured(tmp_path_factory, twenty_class_checkpoint):
    """A node started as a user would, with a parameters file holding a typo, an integer for a float,
    reliable input and a file of calibrated thresholds."""
    folder = tmp_path_factory.mktemp("params")
    (folder / "thresholds.yaml").write_text("msp: -0.5\n")
    (folder / "params.yaml").write_text(
        "/**:\n  ros__parameters:\n"
        f"    model: \"{twenty_class_checkpoint}\"\n"
        "    input_height: 56\n    input_width: 112\n    diagnostics_period: 0.2\n"
        "    thresold: 0.5\n    threshold: 1\n    input_qos: reliable\n    live_camera: true\n"
        f"    score_thresholds: \"{folder / 'thresholds.yaml'}\"\n")
    started = Started(["--params-file", str(folder / "params.yaml")])
    yield started
    started.close()


def get(peer, *names):
    return peer.parameter_call("get_parameters", list(names)).values


def test_start_reports_unknown_names_and_takes_integers_for_floats(configured):
    lines = configured.node.lines
    ready = next(i for i, line in enumerate(lines) if "ready:" in line)
    warned = [line for line in lines[:ready] if "ignored parameters the node does not have" in line]
    assert len(warned) == 1 and "thresold (did you mean threshold?)" in warned[0], lines
    assert "20 classes" in lines[ready] and "(reliable, depth 5)" in lines[ready]
    threshold, reliability = get(configured.peer, "threshold", "input_qos")
    assert threshold.type == ParameterType.PARAMETER_DOUBLE and threshold.double_value == 1.0
    assert reliability.string_value == "reliable"


def test_integer_accepted_for_a_float_parameter(configured):
    peer = configured.peer
    (result,) = peer.set_parameters(threshold=2)  # what `ros2 param set /hypood threshold 2` sends
    assert result.successful, result.reason
    (value,) = get(peer, "threshold")
    assert value.type == ParameterType.PARAMETER_DOUBLE and value.double_value == 2.0
    (result,) = peer.set_parameters(overlay_alpha=1)
    assert result.successful
    (result,) = peer.set_parameters(min_area=1.5)  # the other way round stays refused
    assert not result.successful
    peer.set_parameters(threshold=1.0, overlay_alpha=0.5)


def test_score_change_needs_its_threshold(configured):
    peer = configured.peer
    (result,) = peer.set_parameters(score="energy")
    assert not result.successful and "needs a threshold for energy" in result.reason
    assert get(peer, "score")[0].string_value == "hyperspherical_llr"
    result = peer.parameter_call("set_parameters_atomically",
                                 [Parameter("score", value="energy"), Parameter("threshold", value=-3)]).result
    assert result.successful, result.reason
    assert [v.string_value or v.double_value for v in get(peer, "score", "threshold")] == ["energy", -3.0]
    (result,) = peer.set_parameters(score="msp")  # listed in score_thresholds: its threshold comes along
    assert result.successful, result.reason
    assert get(peer, "threshold")[0].double_value == -0.5
    got = peer.send_and_wait(peer.image(camera_frame(40, 60, seed=5), sec=700))
    score = as_array(got["ood/score"])
    assert score.min() >= -1.0 and score.max() <= -1.0 / 20 + 1e-6  # -max softmax over 20 classes
    back = [Parameter("score", value="hyperspherical_llr"), Parameter("threshold", value=1.0)]
    result = peer.parameter_call("set_parameters_atomically", back).result
    assert result.successful
    # the local contrast changes the threshold's scale as much
    (result,) = peer.set_parameters(local_contrast=0.15)
    assert not result.successful and "needs a threshold calibrated for it" in result.reason
    both = [Parameter("local_contrast", value=0.15), Parameter("threshold", value=0.1)]
    result = peer.parameter_call("set_parameters_atomically", both).result
    assert result.successful, result.reason
    (result,) = peer.set_parameters(score="msp")  # the score_thresholds file holds for the starting contrast only
    assert not result.successful and "needs a threshold for msp" in result.reason
    back = [Parameter("local_contrast", value=0.0), Parameter("threshold", value=1.0)]
    assert peer.parameter_call("set_parameters_atomically", back).result.successful
    # nor in one request that changes both: the file's msp threshold is for local_contrast 0
    both = [Parameter("score", value="msp"), Parameter("local_contrast", value=0.15)]
    result = peer.parameter_call("set_parameters_atomically", both).result
    assert not result.successful and "needs a threshold for msp" in result.reason
    back = [Parameter("local_contrast", value=0.0), Parameter("threshold", value=1.0)]
    assert peer.parameter_call("set_parameters_atomically", back).result.successful


def test_descriptors_name_the_allowed_values(configured):
    score, reliability, threshold = configured.peer.parameter_call(
        "describe_parameters", ["score", "input_qos", "threshold"]).descriptors
    assert "'hyperspherical_llr'" in score.additional_constraints and "'msp'" in score.additional_constraints
    assert not score.read_only
    assert reliability.read_only and "'sensor_data'" in reliability.additional_constraints
    assert "'reliable'" in reliability.description
    assert threshold.type == ParameterType.PARAMETER_DOUBLE and threshold.floating_point_range


def test_classes_latched_and_used_by_the_colour_map(configured):
    peer = configured.peer
    got = []
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    sub = peer.node.create_subscription(String, "classes", got.append, latched)  # joins long after it was sent
    try:
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(got) == 1
    finally:
        peer.node.destroy_subscription(sub)
    classes = json.loads(got[0].data)
    assert len(classes["names"]) == 20 and classes["names"][19] == "class_19" and classes["unlabelled"] == 255
    colors = np.asarray(classes["colors"], dtype=np.uint8)
    assert len({tuple(c) for c in colors}) == 20
    outputs = peer.send_and_wait(peer.image(camera_frame(60, 80, seed=6), sec=701))
    labels = as_array(outputs["semantic/labels"])
    np.testing.assert_array_equal(as_array(outputs["semantic/color"]), colors[labels])


def test_stamp_latency_only_for_a_live_camera(configured):
    peer = configured.peer
    msg = peer.image(camera_frame(40, 60, seed=7), sec=0)
    for _ in range(10):  # more than the frames with made-up stamps that other tests sent
        msg.header.stamp = peer.node.get_clock().now().to_msg()
        peer.send_and_wait(msg)
    # a status published before the live frames were counted still holds the made-up stamps: wait for a newer one
    values = peer.wait_diagnostics(lambda d: float(d.get("stamp_latency_p50_ms", "inf")) < 10_000)
    assert 0.0 < float(values["stamp_latency_p50_ms"]) < 10_000
    assert 0.0 < float(values["latency_p50_ms"]) < 10_000


@pytest.mark.slow
def test_stamp_latency_on_sim_time(tiny_checkpoint):
    """With use_sim_time the stamp latency is measured against /clock (a replayed bag's time)."""
    from rosgraph_msgs.msg import Clock

    started = Started(["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=56", "-p", "input_width:=112",
                       "-p", "diagnostics_period:=0.2", "-p", "use_sim_time:=true"])
    try:
        peer = started.peer
        clock = peer.node.create_publisher(Clock, "/clock", 10)
        deadline = time.monotonic() + 20
        while clock.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(5):
            for _ in range(3):  # the bag's clock stands at 5000 s + i, 0.25 s after the frame's stamp
                clock.publish(Clock(clock=Time(sec=5000 + i, nanosec=250_000_000)))
                time.sleep(0.05)
            msg = peer.image(camera_frame(40, 60, seed=10 + i), sec=5000 + i)
            peer.send_and_wait(msg)
        values = peer.wait_diagnostics(lambda d: "stamp_latency_p50_ms" in d and int(d["frames_processed"]) >= 5)
        assert 200.0 <= float(values["stamp_latency_p50_ms"]) <= 300.0, values
    finally:
        started.close()


class FrameStream:
    """Publishes frames at a fixed rate from a thread until stopped."""

    def __init__(self, peer, rgb, rate_hz, count=None):
        self.peer, self.rgb, self.period, self.count = peer, rgb, 1.0 / rate_hz, count
        self.sent = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        start = time.monotonic()
        i = 0
        while not self._stop.is_set() and (self.count is None or i < self.count):
            msg = self.peer.image(self.rgb, sec=1000 + i)
            self.peer.raw.publish(msg)
            self.sent.append(1000 + i)
            i += 1
            time.sleep(max(0.0, start + i * self.period - time.monotonic()))

    def join(self, timeout=None):
        self._thread.join(timeout)

    def stop(self):
        self._stop.set()
        self._thread.join(5)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_receiving_stops_cleanly(tiny_checkpoint, signum):
    started = Started(["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=140", "-p", "input_width:=280"])
    stream = None
    try:
        peer, node = started.peer, started.node
        stream = FrameStream(peer, camera_frame(240, 320, seed=8), rate_hz=30)
        deadline = time.monotonic() + 30
        while len(peer.received["ood/mask"]) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(peer.received["ood/mask"]) >= 3, "the node never answered"
        before = len(node.lines)
        node.proc.send_signal(signum)  # frames keep arriving while it stops
        code = node.proc.wait(timeout=30)
        node._reader.join(timeout=5)
    finally:
        if stream is not None:
            stream.stop()
        started.close()
    assert code == 0, node.lines
    assert not any("Traceback" in line or "Error" in line for line in node.lines), node.lines
    after = node.lines[before:]
    assert len(after) == 1 and f"stopped ({signal.Signals(signum).name})" in after[0], after


class Recorder:
    """A reliable recorder of every output in its own process-like context, taking serialized samples."""

    def __init__(self, domain, depth=10):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("hypood_test_recorder", context=self.context)
        self.stamps = {topic: [] for topic in OUTPUTS}
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        self.subs = [self.node.create_subscription(Image, topic, lambda raw, t=topic: self.stamps[t].append(
            cdr_stamp(raw)[0]), qos, raw=True) for topic in OUTPUTS]
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def wait_connected(self, timeout=30):
        deadline = time.monotonic() + timeout
        while not all(s.get_publisher_count() > 0 for s in self.subs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(s.get_publisher_count() > 0 for s in self.subs)

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.mark.slow
def test_reliable_recorder_loses_nothing_at_30_hz(tiny_checkpoint):
    """200 frames at 30 Hz; every output the node publishes reaches a reliable recorder (default output QoS).

    With output_depth 2 instead of the default, this run lost semantic/color and semantic/labels samples here.
    """
    started = Started(["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=56", "-p", "input_width:=112",
                       "-p", "diagnostics_period:=0.2"])
    recorder = None
    try:
        peer = started.peer
        recorder = Recorder(started.domain)
        recorder.wait_connected()
        time.sleep(0.5)
        stream = FrameStream(peer, camera_frame(240, 320, seed=9), rate_hz=30, count=200)
        stream.join(timeout=60)
        assert len(stream.sent) == 200

        def settled():
            values = peer.diagnostics()
            processed = int(values.get("frames_processed", -1))
            return processed if all(len(s) == processed for s in recorder.stamps.values()) else None

        deadline = time.monotonic() + 30  # a retransmitted reliable sample can take a heartbeat period
        processed = None
        while processed is None and time.monotonic() < deadline:
            time.sleep(0.3)
            processed = settled()
        values = peer.diagnostics()
        counts = {t: len(s) for t, s in recorder.stamps.items()}
        assert processed is not None, f"recorder got {counts}, node published {values.get('frames_processed')}"
        assert processed >= 100, f"the node kept up with only {processed} of 200 frames: {values}"
        published = set(recorder.stamps["ood/mask"])
        for topic, stamps in recorder.stamps.items():
            assert len(stamps) == len(set(stamps)) and set(stamps) == published, topic
        assert published <= set(stream.sent)
    finally:
        if recorder is not None:
            recorder.close()
        started.close()
