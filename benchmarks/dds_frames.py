"""Largest best-effort raw frame that arrives between two plain rclpy processes, without and with a DDS profile.

    python benchmarks/dds_frames.py [--sizes 320x240,640x480,1280x720,1920x1080] [--frames 30] [--rate 30]
                                    [--profiles none,shipped,shipped-udp] [--discovery-range LOCALHOST] [--json]

For each frame size and profile, a subscriber process and a publisher process (both plain rclpy, sensor-data
QoS: best effort, keep last 5, in their own DDS domain) are started with the profile in their environment;
the publisher sends `--frames` rgb8 Images at `--rate` Hz once it has matched the subscriber, and the
subscriber counts the frames that arrived whole (taken serialized, so Python's decoding does not count).
Prints a table (or JSON with --json). `none` is Fast DDS's built-in configuration; `shipped` is
config/fastdds_large_frames.xml; `shipped-udp` is the same without its shared-memory transport (the path to
peers on other hosts, measured here over loopback); any other value is an XML file.
ROS_AUTOMATIC_DISCOVERY_RANGE is LOCALHOST (as in the tests) unless --discovery-range says otherwise; with
LOCALHOST, rmw_fastrtps configures its own localhost UDP transport, so `shipped-udp` only means something
with SUBNET.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypood_ros.dds import profile_env, resolve_profile, shipped_profile  # noqa: E402

TOPIC = "dds_probe/image"


def _node(name):
    import rclpy

    rclpy.init()
    return rclpy, rclpy.create_node(name)


def subscriber(width: int, height: int) -> None:
    """Count whole frames until stdin closes, then print the count."""
    import threading

    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy, node = _node("dds_probe_sub")
    size = width * height * 3
    got = []

    def on_frame(raw: bytes) -> None:  # serialized: counts what DDS delivered, not Python's decoding speed
        if len(raw) >= size:
            got.append(struct.unpack_from("<i" if raw[1] == 1 else ">i", raw, 4)[0])

    node.create_subscription(Image, TOPIC, on_frame, qos_profile_sensor_data, raw=True)
    print("ready", flush=True)
    spinner = threading.Thread(target=rclpy.spin, args=(node,))
    spinner.start()
    sys.stdin.read()  # the parent closes stdin when the publisher is done
    rclpy.try_shutdown()
    spinner.join()
    print(json.dumps({"received": len(set(got))}), flush=True)


def publisher(width: int, height: int, frames: int, rate: float) -> None:
    import numpy as np
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy, node = _node("dds_probe_pub")
    pub = node.create_publisher(Image, TOPIC, qos_profile_sensor_data)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let the reader side of the match settle too
    msg = Image(height=height, width=width, encoding="rgb8", step=width * 3)
    msg.data = np.random.default_rng(0).integers(0, 256, height * width * 3, dtype=np.uint8).tobytes()
    start = time.monotonic()
    for i in range(frames):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        msg.header.stamp.sec = i
        pub.publish(msg)
    time.sleep(1.0)  # best effort: nothing is resent, but the last fragments may still be in flight
    rclpy.try_shutdown()


def udp_only_profile() -> Path:
    """The shipped profile without its shared-memory transport, in a temporary file."""
    text = shipped_profile().read_text()
    line = "          <transport_id>hypood_shm</transport_id>\n"
    assert line in text, "the shipped profile no longer names hypood_shm in userTransports"
    path = Path(tempfile.mkdtemp(prefix="dds_frames_")) / "udp_only.xml"
    path.write_text(text.replace(line, "", 1))
    return path


def measure(width: int, height: int, profile: str, frames: int, rate: float, discovery: str = "LOCALHOST") -> int:
    """Frames (of `frames`) that arrived whole between two processes using `profile`."""
    env = profile_env(udp_only_profile() if profile == "shipped-udp" else resolve_profile(profile))
    env.update(ROS_DOMAIN_ID=str(random.Random(os.getpid() ^ time.time_ns()).randint(10, 200)),
               ROS_AUTOMATIC_DISCOVERY_RANGE=discovery, PYTHONUNBUFFERED="1")
    env.pop("ROS_LOCALHOST_ONLY", None)
    me = [sys.executable, __file__]
    sub = subprocess.Popen([*me, "--role", "sub", "--sizes", f"{width}x{height}"], env=env, text=True,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert sub.stdout.readline().strip() == "ready"
        subprocess.run([*me, "--role", "pub", "--sizes", f"{width}x{height}", "--frames", str(frames),
                        "--rate", str(rate)], env=env, check=True, timeout=120)
        out, _ = sub.communicate("", timeout=30)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    return json.loads(out.strip().splitlines()[-1])["received"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="320x240,640x480,1280x720,1920x1080")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--profiles", default="none,shipped")
    parser.add_argument("--discovery-range", default="LOCALHOST", choices=["LOCALHOST", "SUBNET"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--role", choices=["sub", "pub"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    if args.role == "sub":
        return subscriber(*sizes[0])
    if args.role == "pub":
        return publisher(*sizes[0], args.frames, args.rate)
    profiles = args.profiles.split(",")
    rows = []
    for width, height in sizes:
        row = {"size": f"{width}x{height}", "mb": width * height * 3 / 1e6, "sent": args.frames}
        for profile in profiles:
            row[profile] = measure(width, height, profile, args.frames, args.rate, args.discovery_range)
        rows.append(row)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"best-effort rgb8 frames, {args.frames} sent at {args.rate:g} Hz between two processes "
          f"(discovery range {args.discovery_range}): frames arrived whole")
    print("| frame | MB | " + " | ".join(profiles) + " |")
    print("|---|---|" + "---|" * len(profiles))
    for row in rows:
        print(f"| {row['size']} | {row['mb']:.2f} | " + " | ".join(f"{row[p]}/{row['sent']}" for p in profiles) + " |")


if __name__ == "__main__":
    main()
