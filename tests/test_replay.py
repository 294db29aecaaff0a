"""Replay of rosbag2 bags through the real node, recording, and threshold calibration."""
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer

from hypood_ros.bags import BagError, read_frames, typestore
from hypood_ros.calibration import threshold_for_fraction
from hypood_ros.pipeline import FramePipeline, PipelineConfig
from hypood_ros.runtimes import load_backend
from ros_harness import random_domain, ros_env

TS = typestore()
Image, CompressedImage = TS.types["sensor_msgs/msg/Image"], TS.types["sensor_msgs/msg/CompressedImage"]
Header, Time = TS.types["std_msgs/msg/Header"], TS.types["builtin_interfaces/msg/Time"]
STAMP0 = 1_700_000_000
NODE_ARGS = ["--node-arg=-p", "--node-arg=input_height:=56", "--node-arg=-p", "--node-arg=input_width:=112"]


def frames(n=6, h=60, w=90):
    return [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i in range(n)]


def write_bag(path, storage, compressed=False, n=6, topic="/front/image_raw", extra_topic=False, stamps=None,
              h=60, w=90, period_ns=10**9):
    """A bag of `n` frames `period_ns` apart; header stamps (sec, nanosec) from `stamps` or increasing."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    msgtype = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conn = writer.add_connection(topic, msgtype, typestore=TS)
        if extra_topic:
            other = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=TS)
            writer.write(other, STAMP0 * 10**9, TS.serialize_cdr(TS.types["std_msgs/msg/String"](data="hi"),
                                                                  "std_msgs/msg/String"))
        for i, rgb in enumerate(frames(n, h, w)):
            sec, nanosec = stamps[i] if stamps is not None else (STAMP0 + i, 123_000 + i)
            header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="front_camera")
            if compressed:
                data = np.frombuffer(cv2.imencode(".png", rgb[:, :, ::-1])[1].tobytes(), np.uint8)
                msg = CompressedImage(header=header, format="png", data=data)
            else:
                msg = Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", is_bigendian=0,
                            step=rgb.shape[1] * 3, data=rgb.reshape(-1))
            writer.write(conn, STAMP0 * 10**9 + i * period_ns + 10**6, TS.serialize_cdr(msg, msgtype))
    return path


def hypood(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "hypood_ros.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ros_env(random_domain()))


def replay_to_a_started_node(bag, ckpt, node_options, replay_args=()):
    """`hypood replay --max-speed` against a node started on its own (node_arguments options)."""
    from hypood_ros.replay.replayer import NodeLauncher, node_arguments

    domain = random_domain()
    node = NodeLauncher(node_arguments(str(ckpt), "/front/image_raw", False,
                                       extra=["-p", "input_height:=56", "-p", "input_width:=112"], **node_options),
                        env=ros_env(domain))
    try:
        node.wait_ready()
        return subprocess.run([sys.executable, "-m", "hypood_ros.cli", "replay", str(bag), "--topic",
                               "/front/image_raw", *replay_args, "--max-speed"],
                              capture_output=True, text=True, timeout=120, env=ros_env(domain))
    finally:
        node.stop()


def replay(bag, ckpt, *extra, topic="/front/image_raw"):
    return hypood("replay", bag, "--topic", topic, "--launch-node", "--model", ckpt, "--rate", "2.0", *NODE_ARGS,
                  *extra)


def recorded(bag_dir, topic):
    return [(f.msg.header.stamp.sec, f.msg.header.stamp.nanosec, f.msg) for f in read_frames(bag_dir, topic)]


@pytest.mark.ros
@pytest.mark.parametrize("storage,compressed", [("sqlite3", False), ("mcap", True)])
def test_replay_answers_every_frame_and_records(tmp_path, tiny_checkpoint, storage, compressed):
    bag = write_bag(tmp_path / "drive", storage, compressed)
    proc = replay(bag, tiny_checkpoint, "--record", tmp_path / "out", "--storage", storage)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "frames sent: 6" in proc.stdout and "answered on ood/mask: 6" in proc.stdout
    assert "dropped (no ood/mask): 0" in proc.stdout
    want = [(STAMP0 + i, 123_000 + i) for i in range(6)]
    for topic in ("/semantic/labels", "/ood/mask", "/ood/score"):
        got = recorded(tmp_path / "out", topic)
        assert sorted((s, n) for s, n, _ in got) == want, topic
        assert all(m.header.frame_id == "front_camera" and (m.height, m.width) == (60, 90) for _, _, m in got)


MSGDEF = """std_msgs/Header header
uint32 height
uint32 width
string encoding
uint8 is_bigendian
uint32 step
uint8[] data
================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
"""


@pytest.mark.ros
def test_mcap_from_another_writer_replays(tmp_path, tiny_checkpoint):
    from mcap_ros2.writer import Writer as McapWriter

    path = tmp_path / "foreign.mcap"
    with open(path, "wb") as f:
        writer = McapWriter(f)
        schema = writer.register_msgdef("sensor_msgs/msg/Image", MSGDEF)
        for i, rgb in enumerate(frames(4)):
            msg = {"header": {"stamp": {"sec": STAMP0 + i, "nanosec": 5}, "frame_id": "cam"}, "height": 60, "width": 90,
                   "encoding": "rgb8", "is_bigendian": 0, "step": 270, "data": rgb.tobytes()}
            writer.write_message("/cam/image", schema, msg, log_time=(STAMP0 + i) * 10**9,
                                 publish_time=(STAMP0 + i) * 10**9)
        writer.finish()
    proc = replay(path, tiny_checkpoint, topic="/cam/image")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "frames sent: 4" in proc.stdout and "answered on ood/overlay: 4" in proc.stdout


def test_bad_bags_give_one_clear_message(tmp_path, tiny_checkpoint):
    bag = write_bag(tmp_path / "drive", "mcap", extra_topic=True)
    empty = tmp_path / "empty"
    with Writer(empty, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.add_connection("/front/image_raw", "sensor_msgs/msg/Image", typestore=TS)
    truncated = tmp_path / "truncated"
    shutil.copytree(bag, truncated)
    data_file = next(truncated.glob("*.mcap"))
    data_file.write_bytes(data_file.read_bytes()[:1500])
    cases = [
        ((bag, "--topic", "/rear/image_raw"), "no topic '/rear/image_raw'; topics in the bag: /chatter"),
        ((bag, "--topic", "/chatter"), "has type std_msgs/msg/String, not an image type"),
        ((empty, "--topic", "/front/image_raw"), "no messages on '/front/image_raw'"),
        ((truncated, "--topic", "/front/image_raw"), "truncated"),
        ((tmp_path / "nowhere", "--topic", "/x"), "bag not found"),
    ]
    for args, message in cases:
        proc = hypood("replay", *args, "--record", tmp_path / "rec", timeout=60)
        # a bag that is not there is a command-line mistake (2); one that cannot be used fails the run (1)
        assert proc.returncode == (2 if message == "bag not found" else 1), (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert not (tmp_path / "rec").exists() and not (tmp_path / "rec.partial").exists()


def test_threshold_for_fraction_on_a_known_distribution():
    rng = np.random.default_rng(0)
    values = rng.permutation(100_000).astype(np.float32)  # 0 .. 99999, all distinct
    chunks = np.split(values, 10)
    result = threshold_for_fraction(iter(chunks), values.size, 0.01)
    assert result.threshold == 100_000 - 1_000 - 1  # exactly 1000 values lie above it
    assert (values > result.threshold).sum() == 1000 and result.flagged_fraction == 0.01
    result = threshold_for_fraction(iter(chunks), values.size, 0.00123)
    assert (values > result.threshold).sum() == 123
    ties = np.array([1.0] * 50 + [2.0] * 50, np.float32)
    result = threshold_for_fraction(iter([ties]), 100, 0.3)
    assert (ties > result.threshold).sum() <= 30  # never more than the target, even with ties


@pytest.mark.ros
def test_calibrate_then_replay_reproduces_the_fraction(tmp_path, tiny_checkpoint):
    bag = write_bag(tmp_path / "id_drive", "mcap", n=5)
    params = tmp_path / "calibrated.yaml"
    proc = hypood("calibrate", "--bag", bag, "--topic", "/front/image_raw", "--model", tiny_checkpoint,
                  "--height", 56, "--width", 112, "--target-fpr", 0.05, "--roi", "none", "--out", params)
    assert proc.returncode == 0, proc.stderr
    values = yaml.safe_load(params.read_text())["/**"]["ros__parameters"]
    assert values["score"] == "hyperspherical_llr" and "id_drive" in params.read_text()
    assert (values["input_height"], values["input_width"]) == (56, 112)  # the size the threshold holds for
    threshold = values["threshold"]
    # Independent check with the pipeline: at most 5% flagged, and no more than one pixel short of it.
    pipeline = FramePipeline(load_backend(tiny_checkpoint, input_hw=(56, 112)), PipelineConfig(outputs={"score"}))
    scores = np.concatenate([pipeline.process(rgb).score.ravel() for rgb in frames(5)])
    flagged = int((scores > threshold).sum())
    assert flagged <= 0.05 * scores.size and flagged >= int(0.05 * scores.size) - 1
    # The node with this params file flags the same pixels.
    proc = replay(bag, tiny_checkpoint, "--params-file", params, "--record", tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    masks = recorded(tmp_path / "out", "/ood/mask")
    assert len(masks) == 5
    node_flagged = sum(int((np.asarray(m.data) > 0).sum()) for _, _, m in masks)
    assert node_flagged == flagged


@pytest.mark.ros
def test_replay_against_a_node_started_separately(tmp_path, tiny_checkpoint):
    bag = write_bag(tmp_path / "drive", "sqlite3", n=4)
    proc = replay_to_a_started_node(bag, tiny_checkpoint, {"namespace": "/car1"}, ["--namespace", "/car1"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "frames sent: 4" in proc.stdout and "answered on semantic/color: 4" in proc.stdout


def test_time_range_selection(tmp_path):
    bag = write_bag(tmp_path / "drive", "sqlite3", n=6)  # one frame per second from STAMP0
    secs = [f.msg.header.stamp.sec - STAMP0 for f in read_frames(bag, "/front/image_raw", start=2.0, duration=2.5)]
    assert secs == [2, 3, 4]
    assert [f.msg.header.stamp.sec - STAMP0 for f in read_frames(bag, "/front/image_raw", start=4.0)] == [4, 5]
    with pytest.raises(BagError, match="no messages on '/front/image_raw' in the selected time range"):
        list(read_frames(bag, "/front/image_raw", start=100.0))


def summary_values(stdout):
    """The replay summary's 'key: value' lines as a dict."""
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


def latency_min_ms(stdout):
    return float(summary_values(stdout)["latency ms"].split()[1])


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("stamps", [[(0, 0)] * 6, [(5, 0), (5, 0), (6, 0), (6, 0), (6, 0), (7, 0)]],
                         ids=["zero", "duplicate"])
def test_zero_and_duplicate_stamps_count_correctly(tmp_path, tiny_checkpoint, stamps):
    bag = write_bag(tmp_path / "drive", "mcap", stamps=stamps)
    proc = replay(bag, tiny_checkpoint, "--record", tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    values = summary_values(proc.stdout)
    assert values["frames sent"] == "6" and values["dropped (no ood/mask)"] == "0", proc.stdout
    assert all(values[f"answered on {topic}"] == "6" for topic in ("ood/mask", "semantic/labels", "ood/score"))
    assert latency_min_ms(proc.stdout) >= 0
    got = recorded(tmp_path / "out", "/ood/mask")
    assert sorted((s, n) for s, n, _ in got) == sorted(stamps)


@pytest.mark.ros
@pytest.mark.slow
def test_clock_follows_the_bag_for_a_sim_time_node(tmp_path, tiny_checkpoint):
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    # Bag time: 10 frames, 0.5 s apart. Played at the recorded rate, so this listener (which discovers the
    # replay process after it started, at its own pace) hears the clock for a while.
    bag = write_bag(tmp_path / "drive", "sqlite3", n=10, period_ns=500_000_000)
    domain = random_domain()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("clock_listener", context=context)
    clocks = []
    node.create_subscription(Clock, "/clock", lambda m: clocks.append(m.clock.sec * 10**9 + m.clock.nanosec),
                             QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        proc = subprocess.run([sys.executable, "-m", "hypood_ros.cli", "replay", str(bag),
                               "--topic", "/front/image_raw", "--launch-node", "--model", str(tiny_checkpoint),
                               "--clock", *NODE_ARGS],
                              capture_output=True, text=True, timeout=240, env=ros_env(domain))
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "answered on ood/mask: 10" in proc.stdout
    first, last = STAMP0 * 10**9 + 10**6, STAMP0 * 10**9 + 9 * 500_000_000 + 10**6  # recorded receive times
    assert f"/clock published from bag time {first * 1e-9:.3f} s" in proc.stdout
    assert clocks, "no /clock message arrived"
    assert clocks == sorted(clocks), "the clock went backwards"
    assert clocks[0] >= first and max(clocks) >= last
    # the replayed window ends at the last frame: waiting for the last answers does not move the clock on
    assert max(clocks) < last + 100_000_000


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("h,w,qos", [(480, 640, "reliable"), (720, 1280, "reliable"), (720, 1280, "sensor_data")])
def test_launch_node_delivers_every_large_frame_with_the_profile(tmp_path, tiny_checkpoint, h, w, qos,
                                                                 profile="shipped"):
    """Replay and the node it starts use matching QoS (reliable, or best effort on both ends) and the profile."""
    bag = write_bag(tmp_path / "drive", "mcap", n=5, h=h, w=w)
    proc = hypood("replay", bag, "--topic", "/front/image_raw", "--launch-node", "--model", tiny_checkpoint,
                  "--max-speed", "--frame-timeout", "20", "--qos", qos, "--dds-profile", profile, *NODE_ARGS,
                  "--record", tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    values = summary_values(proc.stdout)
    assert values["frames sent"] == "5" and values["dropped (no ood/mask)"] == "0", proc.stdout
    assert all(values[f"answered on {topic}"] == "5" for topic in ("ood/mask", "ood/overlay", "ood/score"))
    got = recorded(tmp_path / "out", "/ood/overlay")
    assert len(got) == 5 and all((m.height, m.width) == (h, w) for _, _, m in got)


def test_camera_info_for_each_frame():
    from hypood_ros.replay.replayer import CameraInfos
    from hypood_ros.topics import camera_info_for as camera_info_topic

    assert camera_info_topic("/front/image_raw") == "/front/camera_info"
    assert camera_info_topic("/front/image_raw/compressed") == "/front/camera_info"
    assert camera_info_topic("/image") == "/camera_info" and camera_info_topic("image") == "camera_info"
    Info = TS.types["sensor_msgs/msg/CameraInfo"]

    class Recorded:  # a BagFrame's fields that CameraInfos reads
        def __init__(self, received, sec, width):
            info = Info(header=Header(stamp=Time(sec=sec, nanosec=0), frame_id="cam"), height=1, width=width,
                        distortion_model="plumb_bob", d=np.zeros(5), k=np.zeros(9), r=np.zeros(9), p=np.zeros(12),
                        binning_x=0, binning_y=0, roi=TS.types["sensor_msgs/msg/RegionOfInterest"](
                            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
            self.timestamp_ns, self.rawdata = received, bytes(TS.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))

    infos = CameraInfos([Recorded(100, 10, 1), Recorded(200, 20, 2), Recorded(300, 0, 3)])
    width = {r: TS.deserialize_cdr(r, "sensor_msgs/msg/CameraInfo").width for r in infos.raw}
    assert width[infos.for_frame((20, 0), 150)] == 2  # the frame's own stamp, even if recorded later
    assert width[infos.for_frame((15, 0), 250)] == 2  # else the latest recorded before the frame
    assert width[infos.for_frame((0, 0), 350)] == 3  # a zero stamp matches by time only
    assert infos.for_frame((5, 0), 50) is None


@pytest.mark.ros
@pytest.mark.slow
def test_replay_sends_camera_info_and_records_the_obstacle_outputs(tmp_path, tiny_checkpoint):
    """A bag from a camera driver (Image + CameraInfo): the node also answers on ood/obstacles, ood/grid and
    ood/markers, each recorded with the frame's stamp; `--camera-info none` leaves them out."""
    from rosbags.highlevel import AnyReader

    from hypood_ros.synthetic import writers

    bag = tmp_path / "drive"
    writers.write_bag(bag, writers.drive(3, 5))  # /front/image_raw and /front/camera_info
    stamps = sorted((f.msg.header.stamp.sec, f.msg.header.stamp.nanosec) for f in read_frames(bag, "/front/image_raw"))
    # threshold below every score: the whole frame is one obstacle, so every frame has obstacle outputs
    node_args = NODE_ARGS + ["--node-arg=-p", "--node-arg=threshold:=-10000.0", "--node-arg=-p", "--node-arg=roi:=none"]
    proc = hypood("replay", bag, "--topic", "/front/image_raw", "--launch-node", "--model", tiny_checkpoint,
                  "--max-speed", *node_args, "--record", tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "camera_info replayed from: /front/camera_info" in proc.stdout
    with AnyReader([tmp_path / "out"], default_typestore=TS) as reader:
        kinds = {c.topic: c.msgtype for c in reader.connections}
        got = {}
        for conn, _, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            header = msg.markers[0].header if conn.topic == "/ood/markers" else msg.header
            got.setdefault(conn.topic, []).append((header.stamp.sec, header.stamp.nanosec))
    assert kinds["/ood/obstacles"] == "sensor_msgs/msg/PointCloud2"
    assert kinds["/ood/grid"] == "nav_msgs/msg/OccupancyGrid"
    assert kinds["/ood/markers"] == "visualization_msgs/msg/MarkerArray"
    for topic in ("/ood/obstacles", "/ood/grid", "/ood/markers", "/ood/mask"):
        assert sorted(got[topic]) == stamps, topic
        if topic != "/ood/mask":
            assert f"answered on {topic[1:]}: 5" in proc.stdout

    proc = hypood("replay", bag, "--topic", "/front/image_raw", "--launch-node", "--model", tiny_checkpoint,
                  "--max-speed", *node_args, "--camera-info", "none", "--record", tmp_path / "plain")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "camera_info replayed" not in proc.stdout and "answered on ood/mask: 5" in proc.stdout
    with AnyReader([tmp_path / "plain"], default_typestore=TS) as reader:
        assert not {c.topic for c in reader.connections} & {"/ood/obstacles", "/ood/grid", "/ood/markers"}

    proc = hypood("replay", bag, "--topic", "/front/image_raw", "--camera-info", "/rear/camera_info", timeout=60)
    assert proc.returncode == 1 and "camera info topic '/rear/camera_info' is not in the bag" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr

    # a node started without the camera_info remap: the frames still go out, and the summary says why no
    # camera_info did
    proc = replay_to_a_started_node(bag, tiny_checkpoint, {"qos": "reliable"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "answered on ood/mask: 5" in proc.stdout
    assert "camera_info not replayed: nothing listens on /front/camera_info" in proc.stdout


@pytest.mark.ros
def test_replay_without_a_node_fails_in_one_line_every_time(tmp_path):
    """No node listening: a note while it waits, then one error line and exit 1, and no abort at exit
    (the spin thread is out of rclpy before the context goes)."""
    bag = write_bag(tmp_path / "drive", "mcap", n=2)
    for _ in range(4):
        proc = hypood("replay", bag, "--topic", "/front/image_raw", "--max-speed", "--connect-timeout", "3.5",
                      timeout=60)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines[-1] == ("hypood: error: no hypood node is subscribed to /front/image_raw and publishing "
                             "/ood/mask (waited 3.5 s); start one or use --launch-node"), proc.stderr
        assert "waiting up to 3.5 s for a hypood node subscribed to /front/image_raw" in lines[0]
        assert len(lines) == 2 and "terminate" not in proc.stderr


@pytest.mark.ros
@pytest.mark.slow
def test_launch_node_shows_the_node_warnings(tmp_path, tiny_checkpoint):
    """A misspelled key in the params file: the node warns and the warning reaches the replay's user."""
    bag = write_bag(tmp_path / "drive", "mcap", n=3)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"hypood": {"ros__parameters": {"thresold": -0.2}}}))
    proc = replay(bag, tiny_checkpoint, "--params-file", params)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warned = [line for line in proc.stderr.splitlines() if line.startswith("node: [WARN]")]
    assert any("ignored parameters the node does not have: thresold (did you mean threshold?)" in line
               for line in warned), proc.stderr
    assert "answered on ood/mask: 3" in proc.stdout


def test_replay_camera_info_remap_yields_to_the_users():
    """rcl applies the first remap rule that matches: replay leaves its own out when the user gives one."""
    from hypood_ros.replay.replayer import node_arguments

    args = node_arguments("m.pt", "/front/image_raw", False, camera_info="/front/camera_info")
    assert "camera_info:=/front/camera_info" in args
    args = node_arguments("m.pt", "/front/image_raw", False, camera_info="/front/camera_info",
                          extra=["-r", "camera_info:=/rear/camera_info"])
    assert "camera_info:=/front/camera_info" not in args and args[-2:] == ["-r", "camera_info:=/rear/camera_info"]


def test_replay_passes_the_launched_node_no_input_size():
    """The node runs the model at the size it records: replay's own arguments never set one."""
    from hypood_ros.replay.replayer import node_arguments

    args = node_arguments("m.pt", "/front/image_raw", True, "/car", "p.yaml", qos="sensor_data", use_sim_time=True,
                          camera_info="/front/camera_info")
    assert "model:=m.pt" in args and not any(a.startswith(("input_height", "input_width")) for a in args), args
    extra = ["-p", "input_height:=42"]
    assert node_arguments("m.pt", "/front/image_raw", False, extra=extra)[-2:] == extra  # asked: passed on last


@pytest.mark.ros
def test_launched_node_runs_at_the_recorded_size(tmp_path, tiny_model):
    from hypood_ros.model import save_checkpoint

    ckpt = save_checkpoint(tiny_model, tmp_path / "recorded.pt", metadata={"input_size": [28, 56]})
    bag = write_bag(tmp_path / "drive", "mcap", n=2)
    proc = hypood("replay", bag, "--topic", "/front/image_raw", "--launch-node", "--model", ckpt, "--max-speed")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ready = [line for line in proc.stderr.splitlines() if line.startswith("node: ") and "ready:" in line]
    assert len(ready) == 1 and "input 28x56 (recorded in the model)" in ready[0], proc.stderr
    assert "answered on ood/mask: 2" in proc.stdout
