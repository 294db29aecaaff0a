"""The node's cameras: each one's input, mailbox of waiting frames, outputs, pose and statistics.

One `CameraChannel` per name of the `cameras` parameter, or a single one without a name that keeps the
topics of a one-camera node (`image`, `ood/mask`, ...). A named camera `front` subscribes `front/image`
(or `front/image/compressed`) and `front/camera_info`, publishes under `front/` (`front/ood/mask`, ...) and
has its pose as `front.camera_height`, `front.camera_pitch`, ... (defaults: the node-wide camera_* values).

`Mailboxes` hands the worker the frames of all cameras that have one waiting, so that they share one forward
pass. The first frame to wait waits at most `batch_window` for the other cameras (frames that came while the
network ran do not wait at all), and a camera silent for `SILENT_S` is not waited for: a slow or stopped
camera never holds the others back. Each camera keeps up to `frame_queue` waiting frames: 1 (the default)
keeps only its newest frame (lowest latency, live driving); more keep its frames in order, each batch taking
the oldest waiting frame of each camera, so that a burst (a replayed bag) is answered frame by frame. A full
queue drops its oldest frame, counted as dropped.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from sensor_msgs.msg import CompressedImage, Image

from hypood_ros import topics
from hypood_ros.conversion import check_image_fields, rgb_fields
from hypood_ros.defaults import ParamValueError, check_value
from hypood_ros.errors import ConfigError, FrameError
from hypood_ros.node.obstacles import POSE_PARAMS
from hypood_ros.node.parameters import BY_NAME, descriptor, given_values
from hypood_ros.node.qos import publisher as qos_publisher
from hypood_ros.node.qos import subscription as qos_subscription
from hypood_ros.node.side_outputs import SideOutputs
from hypood_ros.node.stats import FrameStats

SILENT_S = 1.0  # a camera with no frame for this long is not waited for


def declare_pose(node, camera: str, values: Dict[str, float]) -> Dict[str, float]:
    """Declare camera `camera`'s own pose parameters (table descriptors, the node-wide values as defaults);
    returns their values under the table's names. The single camera ('') uses the node-wide ones. Once
    declared (a lifecycle node configured again, or `open` after `load`), their current values."""
    if not camera:
        return {name: values[name] for name in POSE_PARAMS}
    given = given_values(node)
    pose = {}
    for name in POSE_PARAMS:
        desc = descriptor(BY_NAME[name])
        desc.name = f"{camera}.{name}"
        if node.has_parameter(desc.name):
            pose[name] = node.get_parameter(desc.name).value
            continue
        desc.description = f"camera {camera}: {desc.description}"
        try:  # the table's one check, as for every other parameter (an integer is taken for a float)
            value = check_value(BY_NAME[name], given.get(desc.name, values[name]))
        except ParamValueError as exc:
            raise ConfigError(f"parameter {desc.name} {exc.reason}") from None
        pose[name] = node.declare_parameter(desc.name, value, desc, ignore_override=True).value
    return pose


class CameraChannel:
    """One camera. The subscription callbacks only check a message and offer it to the mailboxes; the worker
    calls `publish` with the camera's results (every output of this camera is published from there: images,
    their camera_info and PNG copies). `close` takes its subscription and publishers off the node."""

    def __init__(self, node, name: str, pose: Dict[str, float], values, input_qos, output_qos,
                 mailboxes: "Mailboxes", on_bad: Callable[["CameraChannel", str], None]) -> None:
        """`pose`: the camera's pose parameter values (`declare_pose`)."""
        self.name = name
        self.stats = FrameStats()
        self.pose = pose
        # waiting frames, oldest first: (message, monotonic arrival); both under the Mailboxes' lock
        self.pending: Deque[Tuple[object, float]] = deque()
        self.last_arrival = float("-inf")  # monotonic
        self.roi_state: Tuple[str, Optional[float]] = ("", None)  # why the corridor was missing, the region share
        self.reported = (0, 0)  # inference errors and bad messages already reported in diagnostics
        self._mailboxes = mailboxes
        self._on_bad = on_bad
        self._node = node
        self._outputs = {out: qos_publisher(node, Image, self.topic(topic), output_qos)
                         for out, topic in topics.IMAGE_OUTPUTS.items()}
        self._side = SideOutputs(node, output_qos, name)
        if values["input_type"] == "raw":
            self.subscription = qos_subscription(node, Image, self.topic(topics.IMAGE), self._on_image, input_qos)
        else:
            self.subscription = qos_subscription(node, CompressedImage, self.topic(topics.IMAGE_COMPRESSED),
                                                 self._on_compressed, input_qos)

    def topic(self, relative: str) -> str:
        return topics.camera_topic(self.name, relative)

    # -- input ---------------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        try:
            check_image_fields(msg.height, msg.width, msg.encoding, msg.step, len(msg.data))
        except FrameError as exc:
            self._on_bad(self, str(exc))
            return
        self._offer(msg)

    def _on_compressed(self, msg: CompressedImage) -> None:
        if len(msg.data) == 0:
            self._on_bad(self, "compressed image with no data")
            return
        self._offer(msg)

    def _offer(self, msg) -> None:
        self.stats.on_received(self._mailboxes.offer(self, msg))

    # -- output --------------------------------------------------------------------------------------
    def publish(self, header, result, values, info) -> None:
        """This camera's outputs of one frame, under the input's header: the images, then their camera_info
        (`info`: the camera_info matched to the frame, or None) and PNG copies (raises what publishing raises)."""
        for name, publisher in self._outputs.items():
            image = getattr(result, name)
            if image is None or not values[f"publish_{name}"]:
                continue
            encoding, step, data = rgb_fields(image)
            out = Image(header=header, height=image.shape[0], width=image.shape[1], encoding=encoding,
                        is_bigendian=0, step=step)
            out.data = data
            publisher.publish(out)
        self._side.publish(header, result, values, info)

    def close(self) -> None:
        """Take this camera's subscription and outputs off the node (the mailboxes are stopped first)."""
        self._node.destroy_subscription(self.subscription)
        for pub in self._outputs.values():
            self._node.destroy_publisher(pub)
        self._side.close()

    def status(self, node_name: str, hardware_id: str, info: Dict[str, object], roi: str) -> DiagnosticStatus:
        """This camera's diagnostics: `<node>: OOD segmentation`, with ` (<camera>)` for a named camera."""
        snap = self.stats.snapshot()
        errors, bad = snap["inference_errors"], snap["bad_messages"]
        if errors > self.reported[0]:
            level, message = DiagnosticStatus.ERROR, f"inference failed: {snap['last_error']}"
        elif bad > self.reported[1]:
            level, message = DiagnosticStatus.WARN, f"bad input: {snap['last_error']}"
        else:
            level, message = DiagnosticStatus.OK, "running"
        fallback, share = self.roi_state
        if fallback and level == DiagnosticStatus.OK:
            level, message = DiagnosticStatus.WARN, f"roi {roi} needs the corridor: {fallback}; the road region is used"
        self.reported = (errors, bad)
        mine = {"roi": roi if not fallback else f"{roi} (road used)",
                "roi_share": "whole picture" if share is None else f"{share:.3f}", **self._side.counts}
        if self.name:
            mine.update(camera=self.name, image_topic=self.subscription.topic_name)
        status = DiagnosticStatus(level=level, name=f"{node_name}: OOD segmentation" + (f" ({self.name})" if self.name
                                                                                         else ""),
                                  message=message, hardware_id=hardware_id)
        status.values = [KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v))
                         for k, v in {**snap, **info, **mine}.items()]
        return status


class Mailboxes:
    """The waiting frames of each camera (up to `queue`, oldest first), and the worker's wait for the next batch."""

    def __init__(self, window: float, queue: int = 1) -> None:
        self.window = window
        self.queue = queue
        self.channels: List[CameraChannel] = []
        self._condition = threading.Condition()
        self._running = True
        self._since: Optional[float] = None  # when the first frame of the next batch arrived

    def offer(self, channel: CameraChannel, msg) -> bool:
        """Queue `msg` behind `channel`'s waiting frames; True when the queue was full and its oldest frame
        made room (a dropped frame: with `queue` 1, the newest frame replaces the waiting one)."""
        with self._condition:
            now = time.monotonic()
            dropped = len(channel.pending) >= self.queue
            if dropped:
                channel.pending.popleft()
            channel.pending.append((msg, now))
            channel.last_arrival = now
            if self._since is None:
                self._since = now
            self._condition.notify()
        return dropped

    def take(self) -> Optional[List[Tuple[CameraChannel, object, float]]]:
        """Block until frames are ready: every live camera has one, or the first has waited `window`, or frames
        were left queued by the last batch (ready at once). Returns (camera, message, arrival) of the oldest
        waiting frame of each camera that has one, taking it off its queue; None once stopped."""
        with self._condition:
            while self._running:
                if self._since is None:
                    self._condition.wait()
                    continue
                now = time.monotonic()
                missing = [c for c in self.channels if not c.pending and now - c.last_arrival < SILENT_S]
                left = self._since + self.window - now
                if missing and left > 0:
                    self._condition.wait(left)
                    continue
                waiting = [c for c in self.channels if c.pending]
                batch = [(c, *c.pending.popleft()) for c in waiting]
                # frames still queued waited through this batch already: the next one is ready at once
                self._since = float("-inf") if any(c.pending for c in waiting) else None
                return batch
            return None

    def stop(self) -> None:
        """No more batches: every waiting frame is dropped and the worker's `take` returns None."""
        with self._condition:
            self._running = False
            for channel in self.channels:
                channel.stats.on_dropped(len(channel.pending))  # every frame received is accounted for
                channel.pending.clear()
            self._since = None
            self._condition.notify_all()
