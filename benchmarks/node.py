"""In-node throughput against the bare frame pipeline, and the per-frame cost of message conversion.

    python benchmarks/node.py [--preset tiny] [--height 518 --width 1036] [--camera 480 640] [--frames 30]

Throughput: the node runs in its own process; the benchmark publishes frames at three times the bare
pipeline's rate (the node keeps only the newest) and counts the frames the node answers per second, after
a one-second settling time. The bare pipeline processes the same frame in-process. Conversion: `image_to_rgb`
per encoding and the packing of outputs.
Prints two tables.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hypood_ros.conversion import image_to_rgb, rgb_fields  # noqa: E402
from hypood_ros.model import build_segmentor, save_checkpoint  # noqa: E402
from hypood_ros.pipeline import FramePipeline  # noqa: E402
from hypood_ros.runtimes import load_backend  # noqa: E402


def bare_fps(ckpt, hw, frame, frames):
    pipeline = FramePipeline(load_backend(ckpt, input_hw=hw))
    for _ in range(3):
        pipeline.process(frame)
    start = time.perf_counter()
    for _ in range(frames):
        pipeline.process(frame)
    return frames / (time.perf_counter() - start)


def node_fps(ckpt, hw, frame, seconds, rate):
    """Open loop: frames at `rate` Hz (above what the node can do) for `seconds`; answered frames per second."""
    from ros_harness import NodeProcess, Peer, random_domain

    domain = random_domain()
    node = NodeProcess(["-p", f"model:={ckpt}", "-p", f"input_height:={hw[0]}", "-p", f"input_width:={hw[1]}",
                        "-p", "diagnostics_period:=0.5", "-p", "live_camera:=true"], domain)
    peer = None
    try:
        node.wait_ready()
        peer = Peer(domain)
        peer.wait_connected(peer.raw)
        for sec in range(1, 4):
            peer.send_and_wait(peer.image(frame, sec=sec))
        msg = peer.image(frame, sec=0)
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            msg.header.stamp = peer.node.get_clock().now().to_msg()
            peer.raw.publish(msg)
            time.sleep(1.0 / rate)
        end = time.monotonic()
        time.sleep(1.0)
        wall = time.time() - (end - start) - (time.monotonic() - end)
        answered = [t for t, m in peer.received["ood/mask"] if m.header.stamp.sec > 100 and t >= wall + 1.0]
        diag = peer.diagnostics()
        print(f"node: latency p50 from receipt {diag.get('latency_p50_ms')} ms, from the stamp "
              f"{diag.get('stamp_latency_p50_ms')} ms, "
              f"dropped {diag.get('frames_dropped')} of {diag.get('frames_received')}")
        return (len(answered) - 1) / (answered[-1] - answered[0])
    finally:
        if peer is not None:
            peer.close()
        node.stop()


def conversion_table(repeats=20):
    rng = np.random.default_rng(0)
    print("| size | encoding | image_to_rgb ms | + contiguous copy ms |")
    print("|---|---|---:|---:|")
    for h, w in ((480, 640), (1080, 1920)):
        for encoding, channels, size in (("rgb8", 3, 1), ("bgr8", 3, 1), ("bgra8", 4, 1), ("mono8", 1, 1),
                                         ("mono16", 1, 2), ("bayer_rggb8", 1, 1), ("yuv422", 2, 1)):
            data = rng.integers(0, 256, h * w * channels * size, dtype=np.uint8).tobytes()
            step = w * channels * size
            t0 = time.perf_counter()
            for _ in range(repeats):
                rgb = image_to_rgb(h, w, encoding, step, data)
            t1 = time.perf_counter()
            for _ in range(repeats):
                np.ascontiguousarray(image_to_rgb(h, w, encoding, step, data))
            t2 = time.perf_counter()
            print(f"| {w}x{h} | {encoding} | {(t1 - t0) / repeats * 1e3:.3f} | {(t2 - t1) / repeats * 1e3:.3f} |")
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        t0 = time.perf_counter()
        for _ in range(repeats):
            rgb_fields(rgb)
        print(f"| {w}x{h} | output rgb8 packing | {(time.perf_counter() - t0) / repeats * 1e3:.3f} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--height", type=int, default=518)
    parser.add_argument("--width", type=int, default=1036)
    parser.add_argument("--camera", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    parser.add_argument("--frames", type=int, default=30, help="frames timed for the bare pipeline")
    parser.add_argument("--seconds", type=float, default=12.0, help="duration of the in-node run")
    args = parser.parse_args()
    hw = (args.height, args.width)
    frame = np.random.default_rng(0).integers(0, 256, (*args.camera, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        ckpt = save_checkpoint(build_segmentor(args.preset), Path(tmp) / "model.pt")
        bare = bare_fps(ckpt, hw, frame, args.frames)
        in_node = node_fps(ckpt, hw, frame, args.seconds, rate=3 * bare)
    print(f"preset {args.preset}, input {hw[0]}x{hw[1]}, camera {args.camera[1]}x{args.camera[0]} rgb8, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print("| bare pipeline frames/s | in-node frames/s | ratio |")
    print("|---:|---:|---:|")
    print(f"| {bare:.2f} | {in_node:.2f} | {in_node / bare:.2f} |")
    print()
    conversion_table()


if __name__ == "__main__":
    main()
