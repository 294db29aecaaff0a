"""N cameras in one node against N single-camera nodes: frames/s per camera, latency, memory, CPU.

    python benchmarks/cameras.py [--preset tiny] [--height 224 --width 448] [--camera 240 320] [--rate 30]
                                 [--cameras 1 2 4] [--seconds 10] [--threads T]

Each camera publishes its own frame stream at `--rate` Hz (reliable, stamped with this machine's clock when
published). "one node": one `hypood` node with `cameras:=cam0,cam1,...` (one model, batched passes).
"N nodes": N single-camera nodes, one per namespace `/camK` (N model copies, batch 1 each). The topics are
the same in both (`/camK/image` in, `/camK/ood/mask` out), so the same publisher measures both.
Measured after `--settle` seconds, for `--seconds`: answered masks per second per camera (mean over the
cameras), latency from the stamp to the mask's arrival here (p50, p99 over every answer), the resident memory
of the node processes added up (VmRSS at the end), and their CPU seconds per answered frame (/proc utime +
stime over the window). `--threads T`: OMP_NUM_THREADS=T for every node process (default: torch's own choice,
all cores per process). Prints one table.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hypood_ros.model import build_segmentor, save_checkpoint  # noqa: E402


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def run(ckpt, hw, frame, names, one_node: bool, rate: float, settle: float, seconds: float, threads: int = 0):
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from ros_harness import NodeProcess, random_domain, ros_env

    domain = random_domain()
    common = ["-p", f"model:={ckpt}", "-p", f"input_height:={hw[0]}", "-p", f"input_width:={hw[1]}",
              "-p", "input_qos:=reliable", "-p", "roi:=none", "-p", "publish_obstacles:=false",
              "-p", "publish_grid:=false", "-p", "publish_markers:=false"]
    env = {"OMP_NUM_THREADS": str(threads)} if threads else {}
    if one_node:
        nodes = [NodeProcess(common + ["-p", f"cameras:={','.join(names)}"], domain, env=env)]
    else:
        nodes = [NodeProcess(common + ["-r", f"__ns:=/{name}"], domain, env=env) for name in names]
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    os.environ.update(ros_env(domain))
    peer = rclpy.create_node("cameras_benchmark", context=context)
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(peer)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    try:
        for node in nodes:
            node.wait_ready(timeout=300)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        answers = {name: [] for name in names}  # (arrival, latency s)

        def on_mask(msg, name):
            now = time.time()
            answers[name].append((now, now - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)))

        pubs = {}
        for name in names:
            pubs[name] = peer.create_publisher(Image, f"/{name}/image", qos)
            peer.create_subscription(Image, f"/{name}/ood/mask", lambda m, n=name: on_mask(m, n), qos)
        spinner.start()
        deadline = time.monotonic() + 60
        while not all(p.get_subscription_count() for p in pubs.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("no connection to the node(s)")
            time.sleep(0.05)

        stop = threading.Event()

        def stream(name):
            msg = Image(height=frame.shape[0], width=frame.shape[1], encoding="rgb8", step=frame.shape[1] * 3)
            msg.header.frame_id = name
            msg.data = frame.tobytes()
            next_at = time.monotonic()
            while not stop.is_set():
                now = time.time()
                msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
                pubs[name].publish(msg)
                next_at += 1.0 / rate
                stop.wait(max(0.0, next_at - time.monotonic()))

        threads = [threading.Thread(target=stream, args=(name,), daemon=True) for name in names]
        for thread in threads:
            thread.start()
        time.sleep(settle)
        start_wall = time.time()
        cpu0 = sum(proc_cpu_s(node.proc.pid) for node in nodes)
        time.sleep(seconds)
        cpu1 = sum(proc_cpu_s(node.proc.pid) for node in nodes)
        end_wall = time.time()
        rss_mib = sum(node.rss_kib() for node in nodes) / 1024
        stop.set()
        for thread in threads:
            thread.join()
        window = {name: [lat for t, lat in answers[name] if start_wall <= t < end_wall] for name in names}
        latencies = np.concatenate([np.asarray(v) for v in window.values()]) * 1e3
        per_camera = [len(v) / (end_wall - start_wall) for v in window.values()]
        frames = sum(len(v) for v in window.values())
        return {"fps_per_camera": float(np.mean(per_camera)), "fps_min": float(np.min(per_camera)),
                "p50": float(np.percentile(latencies, 50)) if len(latencies) else float("nan"),
                "p99": float(np.percentile(latencies, 99)) if len(latencies) else float("nan"),
                "rss_mib": rss_mib, "cpu_ms_per_frame": (cpu1 - cpu0) / max(frames, 1) * 1e3}
    finally:
        executor.shutdown()
        peer.destroy_node()
        rclpy.try_shutdown(context=context)
        for node in nodes:
            node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--height", type=int, default=224)
    parser.add_argument("--width", type=int, default=448)
    parser.add_argument("--camera", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second of each camera")
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of each node process (0: unset)")
    args = parser.parse_args()
    hw = (args.height, args.width)
    frame = np.random.default_rng(0).integers(0, 256, (*args.camera, 3), dtype=np.uint8)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        ckpt = save_checkpoint(build_segmentor(args.preset), Path(tmp) / "model.pt")
        for n in args.cameras:
            names = [f"cam{i}" for i in range(n)]
            for one_node in (True, False):
                if n == 1 and not one_node:
                    continue  # one camera: both are the same single-camera node
                label = "one node" if one_node else f"{n} nodes"
                result = run(ckpt, hw, frame, names, one_node, args.rate, args.settle, args.seconds, args.threads)
                rows.append((n, label, result))
                print(f"done: {n} cameras, {label}", file=sys.stderr)
    print(f"preset {args.preset}, input {hw[0]}x{hw[1]}, camera {args.camera[1]}x{args.camera[0]} rgb8 at "
          f"{args.rate:g} Hz each, {args.seconds:g} s measured after {args.settle:g} s, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, OMP_NUM_THREADS {args.threads or 'unset'}")
    print("| cameras | setup | frames/s per camera (min) | latency p50 ms | latency p99 ms | resident MiB (total) "
          "| node CPU ms per frame |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n, label, r in rows:
        print(f"| {n} | {label} | {r['fps_per_camera']:.2f} ({r['fps_min']:.2f}) | {r['p50']:.1f} | {r['p99']:.1f} | "
              f"{r['rss_mib']:.0f} | {r['cpu_ms_per_frame']:.1f} |")


if __name__ == "__main__":
    main()
