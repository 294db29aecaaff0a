"""Stand-in for tf2_ros in the node's TF test: tf2_ros (and tf2_msgs, the type of /tf) cannot be installed
from PyPI, so this offers the part of its Python API the node calls -- `Buffer()`, `TransformListener(buffer,
node)`, `Buffer.lookup_transform(target, source, time, timeout)` and the lookup exceptions -- with real
transforms arriving over DDS as geometry_msgs/TransformStamped on /tf_stand_in.

A lookup returns the newest transform from `source` into `target` stamped at or before the requested time
(tf2 would interpolate between two), raises LookupException when the frames were never connected and
ExtrapolationException when every transform is newer than the time. Each request is appended to the file
named by HYPOOD_TF_LOG ("target source nanoseconds") so that the test can check what the node asked for.
"""
import os
import threading

from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

TOPIC = "/tf_stand_in"


class TransformException(Exception):
    pass


class LookupException(TransformException):
    pass


class ConnectivityException(TransformException):
    pass


class ExtrapolationException(TransformException):
    pass


class Buffer:
    def __init__(self, *args, **kwargs):
        self._lock = threading.Lock()
        self._transforms = []  # (stamp ns, TransformStamped)

    def set_transform(self, transform, authority):
        stamp = transform.header.stamp.sec * 1_000_000_000 + transform.header.stamp.nanosec
        with self._lock:
            self._transforms.append((stamp, transform))

    def lookup_transform(self, target_frame, source_frame, time, timeout=None):
        want = time.nanoseconds
        log = os.environ.get("HYPOOD_TF_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{target_frame} {source_frame} {want}\n")
        with self._lock:
            linked = [(s, t) for s, t in self._transforms
                      if t.header.frame_id == target_frame and t.child_frame_id == source_frame]
        if not linked:
            raise LookupException(f'"{target_frame}" passed to lookupTransform argument target_frame does not '
                                  f'exist or is not connected to "{source_frame}"')
        before = [(s, t) for s, t in linked if s <= want]
        if not before:
            raise ExtrapolationException(f"lookup would require extrapolation into the past (requested {want} ns)")
        return max(before, key=lambda item: item[0])[1]


class TransformListener:
    def __init__(self, buffer, node, *, spin_thread=False, qos=None, static_qos=None):
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.subscription = node.create_subscription(TransformStamped, TOPIC,
                                                     lambda msg: buffer.set_transform(msg, "stand-in"), qos)
