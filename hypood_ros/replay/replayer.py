"""Replaying a rosbag2 bag through the node over DDS, recording its outputs, and summarizing.

Messages are published as the recorded CDR bytes (no decode/encode), at the recorded timing scaled by
`rate`, or as fast as the node answers (`max_speed`: the next frame goes out once the previous one was
answered or timed out). Outputs are received serialized and written to the new bag unchanged. Which
frame an output answers is decided by message order and receipt (`ReplayLedger`), so bags with zero or
repeated stamps count correctly. With `clock`, /clock follows the bag's recorded time for sim-time nodes.
A CameraInfo topic of the bag is replayed beside the frames (each frame's own, or the latest recorded before
it, goes out just ahead of the frame), so the node also publishes, and replay records, its obstacle outputs.
"""
from __future__ import annotations

import signal
import struct
import subprocess
import sys
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import rclpy
from nav_msgs.msg import OccupancyGrid
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from hypood_ros import topics
from hypood_ros.bags import CAMERA_INFO, COMPRESSED, RecorderThread, bag_topics, read_camera_infos, read_frames
from hypood_ros.errors import HypoodError
from hypood_ros.replay.ledger import ReplayLedger
from hypood_ros.topics import READY_MARK  # how the node's start-up line begins

OUTPUT_TOPICS = tuple(topics.IMAGE_OUTPUTS.values())
#: The obstacle outputs (published by the node for frames with a usable camera_info): recorded and counted.
GEOMETRY_TYPES = {topics.OBSTACLE_OUTPUTS["obstacles"]: (PointCloud2, "sensor_msgs/msg/PointCloud2"),
                  topics.OBSTACLE_OUTPUTS["grid"]: (OccupancyGrid, "nav_msgs/msg/OccupancyGrid"),
                  topics.OBSTACLE_OUTPUTS["markers"]: (MarkerArray, "visualization_msgs/msg/MarkerArray")}
PRIMARY = topics.PRIMARY
#: How the node's warning and error lines start (rcutils' console format): echoed by NodeLauncher.
NODE_LOUD = ("[WARN]", "[ERROR]", "[FATAL]")
#: How replay publishes frames; the same name is the node's `input_qos` when replay starts the node, so
#: both ends match (reliable: nothing lost in transport; sensor_data: best effort, as a camera driver).
REPLAY_QOS = ("reliable", "sensor_data")


def frame_qos(name: str) -> QoSProfile:
    if name not in REPLAY_QOS:
        raise HypoodError(f"unknown replay QoS {name!r}; use one of {', '.join(REPLAY_QOS)}")
    if name == "sensor_data":
        return qos_profile_sensor_data
    return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def cdr_stamp(raw: bytes) -> Tuple[int, int]:
    """(sec, nanosec) of a serialized message whose first field is a std_msgs/Header."""
    little = raw[1] == 1  # CDR encapsulation: 0x0001 little endian, 0x0000 big endian
    return struct.unpack_from("<iI" if little else ">iI", raw, 4)


class CameraInfos:
    """The bag's CameraInfo messages: for a frame, the one with its stamp, else the latest recorded before it."""

    def __init__(self, frames) -> None:
        self.received = [f.timestamp_ns for f in frames]
        self.raw = [f.rawdata for f in frames]
        self.by_stamp = {cdr_stamp(f.rawdata): f.rawdata for f in frames}

    def for_frame(self, stamp: Tuple[int, int], received_ns: int) -> Optional[bytes]:
        if stamp != (0, 0) and stamp in self.by_stamp:  # a zero stamp says nothing
            return self.by_stamp[stamp]
        i = bisect_right(self.received, received_ns)
        return self.raw[i - 1] if i else None


#: Outputs of one frame further apart than this (p95) point to DDS retransmissions (`ReplaySummary.lines`).
SLOW_DELIVERY_S = 0.1


@dataclass
class ReplaySummary:
    sent: int = 0
    answered: Dict[str, int] = field(default_factory=dict)
    latencies: List[float] = field(default_factory=list)  # seconds, send -> first output
    spreads: List[float] = field(default_factory=list)  # seconds, first -> last output of a frame
    duration: float = 0.0
    record: Optional[Path] = None
    clock: Optional[Tuple[int, int]] = None  # first and last /clock published, bag time in ns
    camera_info: Optional[str] = None  # the bag's CameraInfo topic, when replayed
    geometry: Dict[str, int] = field(default_factory=dict)  # obstacle output topic -> messages received
    notes: List[str] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return self.sent - self.answered.get(PRIMARY, 0)

    def lines(self) -> List[str]:
        lat = np.asarray(self.latencies) * 1e3 if self.latencies else np.array([float("nan")])
        rate = self.answered.get(PRIMARY, 0) / self.duration if self.duration > 0 else 0.0
        out = [f"frames sent: {self.sent}"]
        out += [f"answered on {topic}: {self.answered.get(topic, 0)}" for topic in OUTPUT_TOPICS]
        if self.camera_info or any(self.geometry.values()):
            out.append(f"camera_info replayed from: {self.camera_info or 'none'}")
            out += [f"answered on {topic}: {self.geometry.get(topic, 0)}" for topic in GEOMETRY_TYPES]
        out += [f"dropped (no {PRIMARY}): {self.dropped}",
                (f"latency ms: min {lat.min():.1f}  p50 {np.percentile(lat, 50):.1f}  "
                 f"p95 {np.percentile(lat, 95):.1f}  max {lat.max():.1f}"),
                f"effective rate: {rate:.2f} frames/s over {self.duration:.1f} s"]
        if self.spreads and np.percentile(self.spreads, 95) > SLOW_DELIVERY_S:
            spread = np.asarray(self.spreads) * 1e3
            out.append(f"note: the outputs of a frame came up to {spread.max():.0f} ms apart (p95 "
                       f"{np.percentile(spread, 95):.0f} ms; they are published together): reliable samples were "
                       "sent again, which is what large frames under Fast DDS's default settings do; start the node "
                       "with the shipped profile (FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_large_frames.xml; "
                       "--launch-node does)")
        if self.clock:
            out.append(f"/clock published from bag time {self.clock[0] * 1e-9:.3f} s to {self.clock[1] * 1e-9:.3f} s")
        out += self.notes
        if self.record:
            out.append(f"recorded outputs: {self.record}")
        return out


def node_arguments(model: str, topic: str, compressed: bool, namespace: str = "",
                   params_file: Optional[str] = None, extra: Optional[List[str]] = None,
                   qos: Optional[str] = None, use_sim_time: bool = False,
                   camera_info: Optional[str] = None) -> List[str]:
    """--ros-args for a node that listens on `topic` (raw or compressed) in `namespace`, and on `camera_info`
    for its CameraInfo when given.

    `qos`: how the frames are published (REPLAY_QOS), so the node subscribes with the matching QoS;
    `extra` comes last: its parameters override those before it, and a camera_info remap in it replaces
    replay's own (rcl applies the first remap rule that matches, so replay leaves its rule out).
    No input size is passed: the node runs the model at the size it records unless `params_file` or `extra` ask.
    """
    args = ["--params-file", str(params_file)] if params_file else []
    args += ["-p", f"model:={model}", "-p", f"input_type:={'compressed' if compressed else 'raw'}",
             "-r", f"{'image/compressed' if compressed else 'image'}:={topic}"]
    extra = list(extra or [])
    remapped = {extra[i + 1].split(":=", 1)[0] for i in range(len(extra) - 1) if extra[i] in ("-r", "--remap")}
    if camera_info and topics.CAMERA_INFO not in remapped:  # rcl applies the first matching remap: the user's wins
        args += ["-r", f"camera_info:={camera_info}"]
    if qos is not None:
        frame_qos(qos)  # validates the name
        args += ["-p", f"input_qos:={qos}"]
    if use_sim_time:
        args += ["-p", "use_sim_time:=true"]
    if namespace:
        args += ["-r", f"__ns:={namespace}"]
    return args + list(extra or [])


class NodeLauncher:
    """`hypood_node` in its own process with the given --ros-args; its output collected by a thread.

    `echo` gets each of the node's warning and error lines as it comes (a misspelled parameter in a params
    file, a bad frame), so they are not hidden behind the replay summary.
    """

    def __init__(self, ros_args: List[str], env: Optional[Dict[str, str]] = None,
                 echo: Optional[Callable[[str], None]] = None, module: str = "hypood_ros.node.hypood_node") -> None:
        """`module`: the node's main module (hypood_ros.node.managed: the lifecycle node)."""
        self.proc = subprocess.Popen([sys.executable, "-m", module, "--ros-args", *ros_args],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: List[str] = []
        self._echo = echo
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if self._echo is not None and line.startswith(NODE_LOUD):
                self._echo(f"node: {line}")

    @property
    def ready_line(self) -> Optional[str]:
        """The node's start-up line (backend, input size and where it came from, score, topic), once it came."""
        return next((line for line in self.lines if READY_MARK in line), None)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_line is not None:
                return
            if self.proc.poll() is not None:
                self._reader.join(timeout=2)
                raise HypoodError("the node did not start: " + (self.lines[-1] if self.lines else "no output"))
            time.sleep(0.05)
        raise HypoodError("the node did not become ready in time")

    def stop(self) -> Optional[int]:
        """Ctrl-C, as on a terminal; killed if it does not exit. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return self.proc.returncode


class Replayer:
    def __init__(self, bag, topic: str, publish_topic: Optional[str] = None, namespace: str = "",
                 rate: float = 1.0, max_speed: bool = False, start: Optional[float] = None,
                 duration: Optional[float] = None, frame_timeout: float = 5.0, connect_timeout: float = 30.0,
                 qos: str = "reliable", clock: Optional[float] = None, clock_subscribers: int = 0,
                 camera_info: Optional[str] = "auto", log: Optional[Callable[[str], None]] = None) -> None:
        """`camera_info`: the bag's CameraInfo topic to replay beside the frames; "auto" (the image topic's
        sibling camera_info, when the bag has it), a topic name (must be in the bag), or None / "none".
        `log`: one-line notes while it works (e.g. that it is still waiting for a node)."""
        self.log = log
        if rate <= 0:
            raise HypoodError(f"--rate must be positive, got {rate}")
        if clock is not None and clock <= 0:
            raise HypoodError(f"--clock must be a positive frequency in Hz, got {clock}")
        self.qos = qos
        frame_qos(qos)
        self.clock_hz = clock
        self.clock_subscribers = clock_subscribers  # /clock readers to wait for (a launched sim-time node: 1)
        self.bag, self.topic = Path(bag), topic
        self.publish_topic = publish_topic or topic
        self.namespace = namespace.rstrip("/")
        self.rate, self.max_speed = rate, max_speed
        self.start, self.duration = start, duration
        self.frame_timeout, self.connect_timeout = frame_timeout, connect_timeout
        # Validate the bag before anything starts: missing topic, wrong type, empty, unreadable.
        frames = read_frames(self.bag, topic, start, duration)
        try:
            first = next(frames)
            self.compressed = first.msgtype == COMPRESSED
            self.start_ns = first.timestamp_ns  # bag time of the first frame: /clock holds it until playback starts
        finally:
            frames.close()  # closes the bag reader
        self.camera_info_required = camera_info not in ("auto", None, "", "none")
        if camera_info == "auto":
            sibling = topics.camera_info_for(topic)
            camera_info = sibling if bag_topics(self.bag).get(sibling) == CAMERA_INFO else None
        self.camera_info = None if camera_info in (None, "", "none") else camera_info
        self.infos = CameraInfos(read_camera_infos(self.bag, self.camera_info)) if self.camera_info else None
        #: where the node listens for them (its `camera_info`, remapped by --launch-node)
        self.publish_info_topic = topics.camera_info_for(self.publish_topic) if self.camera_info else None

    def output_topic(self, name: str) -> str:
        return f"{self.namespace}/{name}" if self.namespace else f"/{name}"

    def run(self, recorder: Optional[RecorderThread] = None, progress=None) -> ReplaySummary:
        context = rclpy.Context()
        rclpy.init(context=context)
        node = rclpy.create_node("hypood_replay", context=context)
        summary = ReplaySummary()
        ledger = ReplayLedger(OUTPUT_TOPICS)
        lock = threading.Condition()

        def on_output(name: str, raw: bytes) -> None:
            stamp = cdr_stamp(raw)
            with lock:
                ledger.received(name, stamp, time.monotonic())  # the time taken after any send it may answer
                lock.notify_all()
            if recorder is not None:
                recorder.write(self.output_topic(name), "sensor_msgs/msg/Image", time.time_ns(), raw)

        geometry = {name: 0 for name in GEOMETRY_TYPES}

        def on_geometry(name: str, raw: bytes) -> None:
            with lock:
                geometry[name] += 1
                lock.notify_all()
            if recorder is not None:
                recorder.write(self.output_topic(name), GEOMETRY_TYPES[name][1], time.time_ns(), raw)

        output_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        subscriptions = [node.create_subscription(Image, self.output_topic(name),
                                                  lambda raw, n=name: on_output(n, raw), output_qos, raw=True)
                         for name in OUTPUT_TOPICS]
        geometry_subscriptions = [node.create_subscription(kind, self.output_topic(name),
                                                           lambda raw, n=name: on_geometry(n, raw), output_qos,
                                                           raw=True)
                                  for name, (kind, _) in GEOMETRY_TYPES.items()]
        publisher = node.create_publisher(CompressedImage if self.compressed else Image, self.publish_topic,
                                          frame_qos(self.qos))
        info_publisher = (node.create_publisher(CameraInfo, self.publish_info_topic, frame_qos(self.qos))
                          if self.infos is not None else None)
        clock = (BagClock(node, self.clock_hz, None if self.max_speed else self.rate, self.start_ns)
                 if self.clock_hz else None)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        try:
            if not self._wait_connected(publisher, subscriptions, clock, info_publisher, geometry_subscriptions, node):
                summary.notes.append(f"camera_info not replayed: nothing listens on {self.publish_info_topic} "
                                     f"(remap the node's camera_info there for its obstacle outputs)")
                info_publisher = None
            t0_wall = time.monotonic()
            t0_bag = None
            for frame in read_frames(self.bag, self.topic, self.start, self.duration):
                stamp = cdr_stamp(frame.rawdata)
                if not self.max_speed:
                    t0_bag = frame.timestamp_ns if t0_bag is None else t0_bag
                    due = t0_wall + (frame.timestamp_ns - t0_bag) * 1e-9 / self.rate
                    time.sleep(max(0.0, due - time.monotonic()))
                if clock is not None:
                    clock.at(frame.timestamp_ns)
                info = self.infos.for_frame(stamp, frame.timestamp_ns) if self.infos is not None else None
                if info is not None and info_publisher is not None:
                    info_publisher.publish(info)
                with lock:
                    index = ledger.sent(stamp, time.monotonic())
                publisher.publish(frame.rawdata)
                summary.sent += 1
                if progress is not None:
                    progress.update(1)
                if self.max_speed:
                    with lock:
                        lock.wait_for(lambda: ledger.last_answered(PRIMARY) >= index, timeout=self.frame_timeout)
            if clock is not None:
                clock.hold()  # the replayed window ends at the last frame, as a bag player's clock does
            # Let the last answers arrive on every output (a reliable sample that needed a retransmission
            # can take a DDS heartbeat period); outputs switched off in the node just cost this timeout.
            with lock:
                lock.wait_for(lambda: all(ledger.answered(name) >= summary.sent for name in OUTPUT_TOPICS),
                              timeout=self.frame_timeout)
                # obstacle outputs follow the image outputs of their frame, but not every frame has them (no
                # usable camera_info, an obstacle output switched off): wait until each topic has one per frame,
                # or none came for a quiet second (a moment, when replay sends no camera_info of its own)
                expected = info_publisher is not None  # else only topics that answered at all are waited for
                quiet = 1.0 if expected else 0.3
                settle_until = time.monotonic() + self.frame_timeout
                before, changed = dict(geometry), time.monotonic()
                while (not all(n >= summary.sent for n in geometry.values() if n or expected)
                       and time.monotonic() < min(settle_until, changed + quiet)):
                    lock.wait(timeout=0.05)
                    if geometry != before:
                        before, changed = dict(geometry), time.monotonic()
            with lock:
                summary.answered = {name: ledger.answered(name) for name in OUTPUT_TOPICS}
                summary.geometry = dict(geometry)
                summary.camera_info = self.camera_info if info_publisher is not None else None
                summary.latencies = ledger.latencies()
                summary.spreads = ledger.spreads()
                last = max(ledger.first_answer.values(), default=t0_wall)
            summary.duration = last - t0_wall
        finally:
            if clock is not None:
                summary.clock = clock.close()
            executor.shutdown()
            spinner.join(timeout=5)  # out of rclpy before the context goes: no abort at interpreter exit
            node.destroy_node()
            rclpy.try_shutdown(context=context)
        return summary

    def _wait_connected(self, publisher, subscriptions, clock: Optional["BagClock"] = None, info_publisher=None,
                        geometry=(), node=None) -> bool:
        """Both directions (and /clock and camera_info, if replayed) matched at the endpoint level, so no early
        frame, answer or sim time is lost; obstacle outputs are matched to every publisher the graph shows.

        A camera_info found by "auto" that nothing listens to (a node started without the remap) is given up
        after a short grace: returns False, and the frames go out alone.
        """
        begun = time.monotonic()
        deadline = begun + self.connect_timeout
        rest_since, told = None, False
        while time.monotonic() < deadline:
            if not told and self.log is not None and time.monotonic() - begun > 3.0:
                self.log(f"waiting up to {self.connect_timeout:g} s for a hypood node subscribed to "
                         f"{self.publish_topic} (start one, or use --launch-node)")
                told = True
            clock_ready = clock is None or clock.subscribers() >= self.clock_subscribers
            info_ready = info_publisher is None or info_publisher.get_subscription_count() > 0
            geometry_ready = all(s.get_publisher_count() >= node.count_publishers(s.topic_name) for s in geometry)
            rest = (publisher.get_subscription_count() > 0 and all(s.get_publisher_count() > 0 for s in subscriptions)
                    and clock_ready and geometry_ready)
            if rest and info_ready:
                time.sleep(0.2)
                return True
            rest_since = (rest_since or time.monotonic()) if rest else None
            if rest_since is not None and not self.camera_info_required and time.monotonic() - rest_since > 2.0:
                return False
            time.sleep(0.05)
        if info_publisher is not None and info_publisher.get_subscription_count() == 0 and rest_since is not None:
            raise HypoodError(f"the node listens on {self.publish_topic} but not on {self.publish_info_topic} for "
                              f"the bag's {self.camera_info}; remap its camera_info there or use --camera-info none")
        raise HypoodError(f"no hypood node is subscribed to {self.publish_topic} and publishing "
                          f"{self.output_topic(PRIMARY)} (waited {self.connect_timeout:g} s); start one or use "
                          "--launch-node")


class BagClock:
    """/clock from the bag's recorded (receive) time, for nodes with use_sim_time.

    Until playback starts it holds `start_ns` (the first frame's time), so sim-time nodes have a valid
    time while replay connects. At every frame the clock is set to that frame's recorded time, before
    the frame is published; in between it advances with wall time x `rate` (None: stays put, as with
    --max-speed); after the last frame it stays there (`hold`). Republished at `hz`; never goes backwards.
    Best effort, depth 1, as `ros2 bag play --clock` and rclpy's TimeSource.
    """

    def __init__(self, node, hz: float, rate: Optional[float], start_ns: int) -> None:
        self._publisher = node.create_publisher(Clock, "/clock",
                                                QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        self._rate = rate
        self._lock = threading.Lock()
        self._anchor: Optional[Tuple[int, float]] = None  # (bag ns, monotonic s) of the last frame
        self._start = start_ns
        self._first: Optional[int] = None
        self._last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(1.0 / hz,), name="bag-clock", daemon=True)
        self._thread.start()

    def subscribers(self) -> int:
        return self._publisher.get_subscription_count()

    def at(self, bag_ns: int) -> None:
        with self._lock:
            self._anchor = (bag_ns, time.monotonic())
            self._publish(bag_ns)

    def _publish(self, bag_ns: int) -> None:
        value = max(bag_ns, self._last)
        self._first = value if self._first is None else self._first
        self._last = value
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(value, 1_000_000_000)
        self._publisher.publish(msg)

    def _loop(self, period: float) -> None:
        while not self._stop.wait(period):
            with self._lock:
                if self._anchor is None:
                    self._publish(self._start)
                    continue
                bag_ns, since = self._anchor
                if self._rate is not None:
                    bag_ns += int((time.monotonic() - since) * self._rate * 1e9)
                self._publish(bag_ns)

    def hold(self) -> None:
        """No more frames: stay at the last frame's time (still republished) while the last answers come."""
        with self._lock:
            self._rate = None

    def close(self) -> Optional[Tuple[int, int]]:
        """Stop; returns the first and last time published (None if nothing was)."""
        self._stop.set()
        self._thread.join()
        return None if self._first is None else (self._first, self._last)
