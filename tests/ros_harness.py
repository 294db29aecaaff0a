"""Test-side ROS 2 plumbing: the node under test in its own process, and a real rclpy peer talking to it."""
from __future__ import annotations

import os
import random
import threading
import time
from collections import defaultdict
from typing import Dict, List, Optional

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from hypood_ros.replay.replayer import NodeLauncher

OUTPUTS = {"semantic/labels": "mono8", "semantic/color": "rgb8", "ood/score": "32FC1", "ood/mask": "mono8",
           "ood/overlay": "rgb8"}


def ros_env(domain: int) -> Dict[str, str]:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    env.pop("ROS_LOCALHOST_ONLY", None)
    return env


def random_domain() -> int:
    return random.Random(os.getpid() ^ time.time_ns()).randint(10, 200)


class NodeProcess(NodeLauncher):
    """The node under test, isolated in its own DDS domain."""

    def __init__(self, ros_args: List[str], domain: int, env: Optional[Dict[str, str]] = None,
                 module: str = "hypood_ros.node.hypood_node") -> None:
        super().__init__(ros_args, env={**ros_env(domain), **(env or {})}, module=module)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")


class Peer:
    """A real rclpy node in the test process: publishes camera frames, records the node's outputs."""

    def __init__(self, domain: int, namespace: str = "") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("hypood_test_peer", namespace=namespace, context=self.context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.raw = self.node.create_publisher(Image, "image", qos)
        self.compressed = self.node.create_publisher(CompressedImage, "image/compressed", qos)
        self.received: Dict[str, List] = defaultdict(list)
        self.lock = threading.Lock()
        for topic in OUTPUTS:
            self.node.create_subscription(Image, topic, lambda m, t=topic: self._store(t, m), qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self._store("diagnostics", m), 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()
        self.params: Optional[AsyncParameterClient] = None

    def _store(self, topic: str, msg) -> None:
        with self.lock:
            self.received[topic].append((time.time(), msg))

    def wait_connected(self, publisher, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if publisher.get_subscription_count() > 0 and all(self.node.count_publishers(t) > 0 for t in OUTPUTS):
                return
            time.sleep(0.05)
        raise AssertionError("no connection to the node under test")

    def image(self, rgb: np.ndarray, sec: int, frame_id: str = "camera", encoding: str = "rgb8") -> Image:
        msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, step=rgb.shape[1] * 3)
        msg.header.stamp.sec, msg.header.frame_id = sec, frame_id
        msg.data = (rgb[:, :, ::-1] if encoding == "bgr8" else rgb).tobytes()
        return msg

    def outputs_for(self, sec: int, nanosec: int = 0) -> Dict[str, Image]:
        with self.lock:
            return {t: m for t in OUTPUTS for _, m in self.received[t]
                    if m.header.stamp.sec == sec and m.header.stamp.nanosec == nanosec}

    def send_and_wait(self, msg, publisher=None, topics=OUTPUTS, timeout: float = 20.0, resend: float = 3.0):
        """Publish until all `topics` answered with this stamp (the input is best-effort)."""
        publisher = publisher or self.raw
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            publisher.publish(msg)
            until = min(deadline, time.monotonic() + resend)
            while time.monotonic() < until:
                got = self.outputs_for(msg.header.stamp.sec, msg.header.stamp.nanosec)
                if all(t in got for t in topics):
                    return got
                time.sleep(0.02)
        raise AssertionError(f"no answer to stamp {msg.header.stamp.sec}")

    def diagnostics(self) -> Dict[str, str]:
        with self.lock:
            if not self.received["diagnostics"]:
                return {}
            status = self.received["diagnostics"][-1][1].status[0]
        return {kv.key: kv.value for kv in status.values}

    def wait_diagnostics(self, predicate, timeout: float = 15.0) -> Dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            values = self.diagnostics()
            if values and predicate(values):
                return values
            time.sleep(0.05)
        raise AssertionError(f"diagnostics never matched; last: {self.diagnostics()}")

    def parameter_call(self, method: str, *args):
        """One AsyncParameterClient call (set_parameters, set_parameters_atomically, get_parameters, ...)."""
        if self.params is None:
            self.params = AsyncParameterClient(self.node, "hypood")
            assert self.params.wait_for_services(timeout_sec=20.0)
        future = getattr(self.params, method)(*args)
        deadline = time.monotonic() + 20.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert future.done(), f"{method} timed out"
        return future.result()

    def set_parameters(self, **values):
        return self.parameter_call("set_parameters", [Parameter(k, value=v) for k, v in values.items()]).results

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
