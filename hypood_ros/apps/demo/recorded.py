"""The node's recorded outputs read back from the output bag: images by stamp, and the obstacles its markers
reported."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from hypood_ros import topics
from hypood_ros.errors import HypoodError


def message_array(msg) -> np.ndarray:
    """A recorded sensor_msgs/Image (rgb8, mono8 or 32FC1) as a numpy array."""
    from hypood_ros.conversion import image_to_rgb

    if msg.encoding == "rgb8":
        return image_to_rgb(msg.height, msg.width, msg.encoding, msg.step, msg.data, msg.is_bigendian)
    dtype = {"mono8": np.dtype(np.uint8), "32FC1": np.dtype(np.float32)}.get(msg.encoding)
    if dtype is None:
        raise HypoodError(f"unexpected output encoding {msg.encoding!r}")
    dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, : msg.width * dtype.itemsize].copy().view(dtype).reshape(msg.height, msg.width)
    return pixels.astype(dtype.newbyteorder("="))


def recorded_outputs(bag: Path) -> Dict[str, Dict[int, np.ndarray]]:
    """{output name: {stamp ns: array}} from the recorded bag."""
    from hypood_ros.bags import read_frames
    from hypood_ros.replay.replayer import OUTPUT_TOPICS

    out = {}
    for name in OUTPUT_TOPICS:
        out[name] = {}
        for frame in read_frames(bag, "/" + name):
            stamp = frame.msg.header.stamp
            out[name][stamp.sec * 10**9 + stamp.nanosec] = message_array(frame.msg)
    return out


@dataclass(frozen=True)
class Reported:
    """An obstacle the node reported on ood/markers: its range label and its box (base_frame, metres)."""
    range: float
    x: float  # the label's position: the centroid of the obstacle's ground contacts
    y: float
    box: Tuple[float, ...] = ()  # centre x, y, z, yaw, depth, width, height; () without a box marker


def marker_range(text: str) -> float:
    """The range a marker label shows ("12.3 m")."""
    number, _, unit = text.strip().partition(" ")
    try:
        if unit.strip() == "m":
            return float(number)
    except ValueError:
        pass
    raise HypoodError(f"unexpected obstacle range label {text!r} (expected e.g. '12.3 m')")


def recorded_obstacles(bag: Path) -> Dict[int, List[Reported]]:
    """{stamp ns: obstacles} from the recorded ood/markers (the node's box and range label per obstacle, after
    a DELETEALL that carries the frame's stamp); frames the node published no markers for are absent."""
    import math

    from hypood_ros.bags import read_messages

    out: Dict[int, List[Reported]] = {}
    for message in read_messages(bag, "/" + topics.OBSTACLE_OUTPUTS["markers"]):
        markers = message.msg.markers
        if not markers:
            continue
        stamp = markers[0].header.stamp
        boxes = {m.id: m for m in markers if m.ns == "obstacles"}
        found = []
        for label in (m for m in markers if m.ns == "ranges"):
            box = boxes.get(label.id)
            shape: Tuple[float, ...] = ()
            if box is not None:
                q, p = box.pose.orientation, box.pose.position
                yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
                shape = (p.x, p.y, p.z, yaw, box.scale.x, box.scale.y, box.scale.z)
            found.append(Reported(marker_range(label.text), label.pose.position.x, label.pose.position.y, shape))
        out[stamp.sec * 10**9 + stamp.nanosec] = found
    return out
