"""The node in its own process, driven over real DDS by a real rclpy peer."""
import contextlib
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage

from ros_harness import OUTPUTS, NodeProcess, Peer, random_domain, ros_env

#: Every test here runs the node in its own process and talks to it over DDS.
pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]


def camera_frame(h=120, w=160, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def as_array(msg):
    dtype = np.float32 if msg.encoding == "32FC1" else np.uint8
    channels = 3 if msg.encoding == "rgb8" else 1
    arr = np.frombuffer(bytes(msg.data), dtype=dtype).reshape(msg.height, msg.width, channels)
    return arr[:, :, 0] if channels == 1 else arr


@contextlib.contextmanager
def running_node(ros_args, publisher="raw"):
    """The node in its own process and domain, and a connected peer; both torn down on exit."""
    domain = random_domain()
    node = NodeProcess(ros_args, domain)
    peer = None
    try:
        node.wait_ready()
        peer = Peer(domain)
        peer.wait_connected(getattr(peer, publisher))
        yield node, peer
    finally:
        if peer is not None:
            peer.close()
        node.stop()


@pytest.fixture(scope="module")
def raw_node(tiny_checkpoint):
    with running_node(["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=56", "-p", "input_width:=112",
                       "-p", "diagnostics_period:=0.2"]) as running:
        yield running


def test_raw_frames_come_back_on_every_output(raw_node):
    _, peer = raw_node
    rgb = camera_frame()
    got = peer.send_and_wait(peer.image(rgb, sec=101, frame_id="front_camera", encoding="bgr8"))
    for topic, encoding in OUTPUTS.items():
        msg = got[topic]
        assert msg.header.frame_id == "front_camera" and msg.header.stamp.sec == 101
        assert (msg.height, msg.width, msg.encoding) == (120, 160, encoding), topic
    assert as_array(got["semantic/labels"]).max() < 19
    assert set(np.unique(as_array(got["ood/mask"]))) <= {0, 255}
    assert np.isfinite(as_array(got["ood/score"])).all()


def test_threshold_change_applies_to_the_next_frame(raw_node):
    _, peer = raw_node
    rgb = camera_frame(seed=1)
    score = as_array(peer.send_and_wait(peer.image(rgb, sec=201))["ood/score"])
    (result,) = peer.set_parameters(roi="none")  # the tiny random model sees no road
    assert result.successful
    (result,) = peer.set_parameters(threshold=float(np.median(score)))
    assert result.successful
    half = as_array(peer.send_and_wait(peer.image(rgb, sec=202))["ood/mask"])
    assert 0.2 < (half > 0).mean() < 0.8
    (result,) = peer.set_parameters(threshold=float(score.max()) + 1.0)
    assert result.successful
    assert (as_array(peer.send_and_wait(peer.image(rgb, sec=203))["ood/mask"]) == 0).all()

    (result,) = peer.set_parameters(threshold=1e9)
    assert not result.successful and "out of range" in result.reason.lower()
    (result,) = peer.set_parameters(score="not_a_score")
    assert not result.successful and "parameter score must be one of" in result.reason
    (result,) = peer.set_parameters(model="/elsewhere.pt")
    assert not result.successful
    (result,) = peer.set_parameters(publish_overlay=False)
    assert result.successful
    peer.send_and_wait(peer.image(rgb, sec=204), topics=["ood/mask"])
    time.sleep(0.5)
    assert "ood/overlay" not in peer.outputs_for(204)
    peer.set_parameters(publish_overlay=True, threshold=0.0)
    peer.set_parameters(roi="road")


def test_bad_messages_are_counted_and_skipped(raw_node):
    node, peer = raw_node
    before = int(peer.wait_diagnostics(lambda d: "bad_messages" in d)["bad_messages"])
    rgb = camera_frame(seed=2)
    bad = []
    msg = peer.image(rgb, sec=301)
    msg.encoding = "weird16"
    bad.append(msg)
    msg = peer.image(rgb, sec=302)
    msg.step = 100
    bad.append(msg)
    msg = peer.image(rgb, sec=303)
    msg.data = bytes(msg.data)[:1000]
    bad.append(msg)
    msg = peer.image(rgb, sec=304)
    msg.height = msg.width = msg.step = 0
    msg.data = b""
    bad.append(msg)
    msg = peer.image(rgb, sec=305)
    msg.height, msg.width, msg.step = 10000, 10000, 30000
    bad.append(msg)
    for msg in bad:
        peer.raw.publish(msg)
        time.sleep(0.05)
    values = peer.wait_diagnostics(lambda d: int(d["bad_messages"]) >= before + len(bad))
    assert int(values["bad_messages"]) == before + len(bad)
    assert peer.send_and_wait(peer.image(rgb, sec=306))  # still answering
    for sec in range(301, 306):
        assert not peer.outputs_for(sec)
    assert node.proc.poll() is None
    status = peer.received["diagnostics"][-1][1].status[0]
    assert status.hardware_id.endswith("hypood") and "backend" in {kv.key for kv in status.values}


def test_latency_is_measured_from_receipt(raw_node):
    """Frames stamped in 1970 (as from an old bag) still give a latency of milliseconds, and no stamp latency."""
    _, peer = raw_node
    for sec in (801, 802, 803):
        peer.send_and_wait(peer.image(camera_frame(seed=sec), sec=sec))
    values = peer.wait_diagnostics(lambda d: int(d["frames_processed"]) >= 3)
    assert 0.0 < float(values["latency_p50_ms"]) <= float(values["latency_max_ms"]) < 10_000
    assert not any(key.startswith("stamp_latency") for key in values)


@pytest.fixture(scope="module")
def slow_node(tiny_checkpoint):
    """The same tiny model at the full 518x1036 input: a few frames per second on this machine."""
    with running_node(["-p", f"model:={tiny_checkpoint}", "-p", "diagnostics_period:=0.2"]) as running:
        yield running


def test_overload_keeps_memory_and_latency_bounded(slow_node):
    node, peer = slow_node
    rgb = camera_frame(240, 320, seed=3)
    msg = peer.image(rgb, sec=0)
    for sec in range(400, 403):  # warm-up at this frame size
        peer.send_and_wait(peer.image(rgb, sec=sec))
    start = time.monotonic()
    sent = []
    rss = {}
    while time.monotonic() - start < 8.0:
        now = peer.node.get_clock().now().to_msg()
        msg.header.stamp = now
        peer.raw.publish(msg)
        sent.append((now.sec, now.nanosec))
        if "early" not in rss and time.monotonic() - start > 2.0:
            rss["early"] = node.rss_kib()
        time.sleep(1 / 40)
    rss["late"] = node.rss_kib()

    def answers():
        with peer.lock:
            return {(m.header.stamp.sec, m.header.stamp.nanosec): t for t, m in peer.received["ood/mask"]}

    # The last frame waits in the mailbox and must be processed; a reliable output sample that needed a
    # retransmission can take a DDS heartbeat period (seconds) to arrive.
    deadline = time.monotonic() + 10.0
    while sent[-1] not in answers() and time.monotonic() < deadline:
        time.sleep(0.05)
    stamps = answers()
    answered = [s for s in sent if s in stamps]
    assert len(answered) >= 5, "the node answered too few frames under load"
    assert len(answered) < len(sent), "no frame was dropped, so the node was not overloaded"
    assert answered[-1] == sent[-1], "the newest frame must be the one processed last"
    latency = [stamps[s] - (s[0] + s[1] * 1e-9) for s in answered]
    third = max(1, len(latency) // 3)
    early, late = np.median(latency[:third]), np.median(latency[-third:])
    assert late < early * 1.5 + 0.1, f"latency grew: {early:.3f}s -> {late:.3f}s"
    assert rss["late"] < rss["early"] * 1.10, f"RSS grew: {rss}"
    values = peer.wait_diagnostics(lambda d: int(d["frames_dropped"]) > 0)
    assert int(values["frames_dropped"]) >= len(sent) - len(answered) - 5


def test_compressed_input_with_shipped_params_file(tiny_checkpoint):
    args = ["--params-file", str(REPO / "config" / "hypood.yaml"), "-p", f"model:={tiny_checkpoint}",
            "-p", "input_type:=compressed", "-p", "input_height:=56", "-p", "input_width:=112",
            "-p", "diagnostics_period:=0.2"]
    with running_node(args, publisher="compressed") as (node, peer):
        assert any("image/compressed" in line for line in node.lines)
        rgb = camera_frame(90, 140, seed=4)
        msg = CompressedImage(format="jpeg")
        msg.header.stamp.sec, msg.header.frame_id = 501, "cam_c"
        msg.data = cv2.imencode(".jpg", rgb[:, :, ::-1])[1].tobytes()
        got = peer.send_and_wait(msg, publisher=peer.compressed)
        assert all(m.header.frame_id == "cam_c" for m in got.values())
        assert (got["ood/overlay"].height, got["ood/overlay"].width) == (90, 140)

        garbage = CompressedImage(format="jpeg")
        garbage.header.stamp.sec = 502
        garbage.data = b"\xff\xd8 this is not a jpeg" * 20
        peer.compressed.publish(garbage)
        peer.wait_diagnostics(lambda d: int(d["bad_messages"]) >= 1)
        msg.header.stamp.sec = 503
        assert peer.send_and_wait(msg, publisher=peer.compressed)
        assert not peer.outputs_for(502)
    assert node.proc.returncode == 0, "\n".join(node.lines)  # Ctrl-C is a clean exit


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_bad_model_path_exits_at_start_with_one_line(tmp_path, tiny_checkpoint, kind):
    path = tmp_path / "model.pt"
    if kind == "corrupt":
        path.write_bytes(tiny_checkpoint.read_bytes()[:4096])
    proc = subprocess.run([sys.executable, "-m", "hypood_ros.node.hypood_node", "--ros-args", "-p", f"model:={path}"],
                          env=ros_env(random_domain()), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hypood_node: error:") and str(path) in lines[0], lines


def test_large_frames_with_reliable_input_qos(tiny_checkpoint):
    """1280x720 rgb8 over a reliable subscription (best effort does not carry it with default DDS settings)."""
    args = ["-p", f"model:={tiny_checkpoint}", "-p", "input_height:=56", "-p", "input_width:=112",
            "-p", "input_qos:=reliable"]
    with running_node(args) as (node, peer):
        rgb = camera_frame(720, 1280, seed=7)
        got = peer.send_and_wait(peer.image(rgb, sec=601), topics=["ood/mask", "semantic/labels"])
        assert (got["ood/mask"].height, got["ood/mask"].width) == (720, 1280)


def test_checkpoint_runs_at_its_recorded_size_and_the_node_says_so(tmp_path, tiny_model):
    """No input_height/input_width given: the node runs the checkpoint at the size it records, and names that size
    and where it came from in its ready line and /diagnostics. An explicitly different size is used, with a warning."""
    from hypood_ros.model import load_checkpoint, save_checkpoint
    from hypood_ros.pipeline import FramePipeline, PipelineConfig
    from hypood_ros.runtimes.torch_backend import TorchBackend

    path = save_checkpoint(tiny_model, tmp_path / "recorded.pt", metadata={"input_size": [28, 56]})
    with running_node(["-p", f"model:={path}", "-p", "diagnostics_period:=0.2"]) as (node, peer):
        assert "input 28x56 (recorded in the model)" in node.ready_line, node.lines
        values = peer.wait_diagnostics(lambda d: "input_size" in d)
        assert (values["input_size"], values["input_size_source"]) == ("28x56", "recorded in the model")
        rgb = camera_frame(seed=8)
        score = as_array(peer.send_and_wait(peer.image(rgb, sec=701))["ood/score"])
        assert not any("[WARN]" in line for line in node.lines), node.lines
    at = {hw: FramePipeline(TorchBackend(load_checkpoint(path), input_hw=hw), PipelineConfig()).process(rgb).score
          for hw in ((28, 56), (42, 56))}
    np.testing.assert_allclose(score, at[(28, 56)], rtol=1e-4, atol=1e-4)
    assert not np.allclose(score, at[(42, 56)], rtol=1e-4, atol=1e-4)

    node = NodeProcess(["-p", f"model:={path}", "-p", "input_height:=42"], random_domain())
    try:
        node.wait_ready()
        assert "input 42x56 (height asked, width recorded in the model)" in node.ready_line, node.lines
        warned = [line for line in node.lines if line.startswith("[WARN]")]
        assert len(warned) == 1 and warned[0].endswith(f"{path} was trained at 28x56; running at 42x56 as asked")
    finally:
        node.stop()
