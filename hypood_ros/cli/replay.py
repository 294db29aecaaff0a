"""`hypood replay`: a recorded drive through the node, its outputs recorded into a new bag."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("replay", help="replay a rosbag2 bag through the node and record its outputs")
    parser.add_argument("bag", type=Path, help="rosbag2 bag directory or file (.db3 / .mcap)")
    parser.add_argument("--topic", required=True, help="image topic in the bag (Image or CompressedImage)")
    parser.add_argument("--publish-topic", default=None, help="topic to publish on (default: --topic)")
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--rate", type=float, default=1.0, help="playback speed factor of the recorded timing")
    speed.add_argument("--max-speed", action="store_true", help="next frame as soon as the node answered")
    parser.add_argument("--start", type=float, default=None, help="seconds from the bag's start")
    parser.add_argument("--duration", type=float, default=None, help="seconds to replay")
    parser.add_argument("--record", type=Path, default=None, help="write the node's outputs to this new bag")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="format of --record")
    parser.add_argument("--namespace", default="", help="namespace of the node's topics")
    parser.add_argument("--frame-timeout", type=float, default=5.0, help="seconds to wait for an answer")
    parser.add_argument("--qos", choices=["reliable", "sensor_data"], default="reliable",
                        help="QoS of the published frames; --launch-node starts the node with the matching input_qos")
    parser.add_argument("--clock", type=float, nargs="?", const=40.0, default=None, metavar="HZ",
                        help="publish /clock from the bag's recorded time (default 40 Hz); --launch-node then "
                             "sets use_sim_time on the node")
    parser.add_argument("--dds-profile", default="auto",
                        help="Fast DDS profile XML for this process and --launch-node: a path, 'shipped' "
                             "(config/fastdds_large_frames.xml, for large raw frames), 'none' (Fast DDS defaults) "
                             "or 'auto' (the file FASTDDS_DEFAULT_PROFILES_FILE names, else shipped)")
    parser.add_argument("--launch-node", action="store_true", help="start the node for this replay")
    parser.add_argument("--model", default=None, help="model for --launch-node")
    parser.add_argument("--params-file", default=None, help="params YAML for --launch-node")
    parser.add_argument("--node-arg", action="append", default=[],
                        help="extra --ros-args item for --launch-node, e.g. --node-arg=-p --node-arg=device:=cuda")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hypood_ros.bags import RecorderThread
    from hypood_ros.dds import profile_env, resolve_profile, use_profile
    from hypood_ros.errors import HypoodError

    profile = resolve_profile(args.dds_profile)
    use_profile(profile)  # before this process's first DDS participant
    from hypood_ros.node.replay import NodeLauncher, Replayer, node_arguments

    replayer = Replayer(args.bag, args.topic, args.publish_topic, args.namespace, rate=args.rate,
                        max_speed=args.max_speed, start=args.start, duration=args.duration,
                        frame_timeout=args.frame_timeout, qos=args.qos, clock=args.clock,
                        clock_subscribers=1 if args.launch_node and args.clock is not None else 0)
    launcher = None
    if args.launch_node:
        if not args.model:
            raise HypoodError("--launch-node needs --model")
        launcher = NodeLauncher(node_arguments(args.model, replayer.publish_topic, replayer.compressed,
                                               args.namespace, args.params_file, args.node_arg, qos=args.qos,
                                               use_sim_time=args.clock is not None),
                                env=profile_env(profile))
    recorder = None
    ok = False
    try:
        if launcher is not None:
            launcher.wait_ready()
        recorder = RecorderThread(args.record, args.storage) if args.record else None
        with tqdm(desc="hypood replay", unit="frame", file=sys.stderr) as progress:
            summary = replayer.run(recorder, progress)
        ok = True
    finally:
        if recorder is not None:
            summary_record = recorder.close(success=ok)
        if launcher is not None:
            launcher.stop()
    if recorder is not None:
        summary.record = summary_record
    print("\n".join(summary.lines()))
    return 0 if summary.answered.get("ood/mask", 0) > 0 else 1
