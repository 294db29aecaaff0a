"""`hypood replay`: a recorded drive through the node, its outputs recorded into a new bag."""
from __future__ import annotations

import argparse
from pathlib import Path

from hypood_ros import topics
from hypood_ros.cli.parser import add_no_progress, add_option, float_in, merge_positional
from hypood_ros.cli.paths import Output, existing_file, model_file
from hypood_ros.errors import UsageError

HELP = "replay a rosbag2 bag through the node and record its outputs"


def configure(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "--bag", metavar="PATH", help="rosbag2 bag to replay: folder, .db3 or .mcap (required)")
    parser.add_argument("bag_arg", nargs="?", default=None, help=argparse.SUPPRESS)  # earlier spelling: positional
    add_option(parser, "--topic", required=True, help="image topic in the bag (Image or CompressedImage)")
    add_option(parser, "--publish-topic", default=None, help="topic to publish on (default: --topic)")
    add_option(parser, "--camera-info", default="auto", metavar="TOPIC",
               help="CameraInfo topic in the bag, replayed beside the frames so that the node also publishes its "
                    "obstacle outputs (recorded too); 'auto': the image topic's sibling camera_info when the bag "
                    "has it, 'none': not replayed")
    speed = parser.add_mutually_exclusive_group()
    add_option(speed, "--rate", type=float_in(0.0, None, low_open=True), default=1.0, metavar="FACTOR",
               help="playback speed factor of the recorded timing")
    add_option(speed, "--max-speed", action="store_true", help="next frame as soon as the node answered")
    add_option(parser, "--start", type=float_in(0.0), default=None, metavar="SECONDS",
               help="start this many seconds after the bag's first message (default: at the start)")
    add_option(parser, "--duration", type=float_in(0.0, None, low_open=True), default=None, metavar="SECONDS",
               help="seconds to replay (default: to the end)")
    add_option(parser, "--record", default=None, metavar="DIR",
               help="new bag folder for the node's outputs (default: nothing recorded)")
    add_option(parser, "--storage", choices=["mcap", "sqlite3"], default="mcap", help="format of --record")
    add_option(parser, "--namespace", default="", help="namespace of the node's topics (default: none)")
    add_option(parser, "--frame-timeout", type=float_in(0.0, None, low_open=True), default=5.0, metavar="SECONDS",
               help="seconds to wait for the node's answer to a frame")
    add_option(parser, "--connect-timeout", type=float_in(0.0, None, low_open=True), default=30.0, metavar="SECONDS",
               help="seconds to wait for a node subscribed to the frames (DDS discovery) before giving up")
    add_option(parser, "--qos", choices=["reliable", "sensor_data"], default="reliable",
               help="QoS of the published frames; --launch-node starts the node with the matching input_qos")
    add_option(parser, "--clock", type=float_in(0.0, None, low_open=True), nargs="?", const=40.0, default=None,
               metavar="HZ", help="publish /clock from the bag's recorded time (40 Hz when no rate is given); "
                                  "--launch-node then sets use_sim_time on the node (default: no /clock)")
    add_option(parser, "--dds-profile", default="auto", metavar="PROFILE",
               help="Fast DDS profile XML for this process and --launch-node: a path, 'shipped' "
                    "(config/fastdds_large_frames.xml, for large raw frames), 'none' (Fast DDS defaults) "
                    "or 'auto' (the file FASTDDS_DEFAULT_PROFILES_FILE names, else shipped)")
    add_option(parser, "--launch-node", action="store_true", help="start the node for this replay")
    add_option(parser, "--model", default=None, metavar="FILE",
               help="model file for --launch-node (default: the --params-file's model)")
    add_option(parser, "--params-file", default=None, metavar="FILE", help="params YAML for --launch-node")
    add_option(parser, "--node-arg", action="append", default=[], metavar="ARG",
               help="extra --ros-args item for --launch-node, e.g. --node-arg=-p --node-arg=device:=cuda")
    add_no_progress(parser)
    parser.set_defaults(func=run)


def check_args(args: argparse.Namespace) -> None:
    """Everything the command line alone can tell, before the bag is opened or a node started."""
    args.bag = merge_positional(args.bag, args.bag_arg, "--bag", "the bag", "replay")
    if not Path(args.bag).exists():
        raise UsageError(f"--bag {args.bag}: bag not found")
    if args.launch_node:
        if args.params_file:
            args.params_file = str(existing_file(args.params_file, "--params-file", (".yaml", ".yml"), "YAML file"))
        option = "--model"
        if not args.model and args.params_file:  # the node would take the file's model: so does replay
            from hypood_ros.cli.params_file import params_file_values
            from hypood_ros.launch_spec import fully_qualified

            values = params_file_values(args.params_file, fully_qualified(args.namespace), note_unknown=False)
            args.model = values.get("model") or None
            option = f"model (from --params-file {args.params_file})"
        if not args.model:
            raise UsageError("--launch-node needs --model (or a model: in its --params-file)")
        args.model = str(model_file(args.model, option))
    elif args.model or args.params_file or args.node_arg:
        raise UsageError("--model, --params-file and --node-arg apply to --launch-node only")


def run(args: argparse.Namespace) -> int:
    check_args(args)
    record = Output(args.record, "--record", kind="folder", create=False) if args.record else None
    launcher = recorder = None
    ok = False
    try:
        from hypood_ros.bags import RecorderThread
        from hypood_ros.cli.console import note, progress
        from hypood_ros.dds import profile_env, resolve_profile, use_profile

        profile = resolve_profile(args.dds_profile)
        use_profile(profile)  # before this process's first DDS participant
        from hypood_ros.replay.replayer import NodeLauncher, Replayer, node_arguments

        replayer = Replayer(args.bag, args.topic, args.publish_topic, args.namespace, rate=args.rate,
                            max_speed=args.max_speed, start=args.start, duration=args.duration,
                            frame_timeout=args.frame_timeout, connect_timeout=args.connect_timeout, qos=args.qos,
                            clock=args.clock,
                            clock_subscribers=1 if args.launch_node and args.clock is not None else 0,
                            camera_info=args.camera_info, log=note)
        if args.launch_node:
            launcher = NodeLauncher(node_arguments(args.model, replayer.publish_topic, replayer.compressed,
                                                   args.namespace, args.params_file, args.node_arg, qos=args.qos,
                                                   use_sim_time=args.clock is not None,
                                                   camera_info=replayer.publish_info_topic),
                                    env=profile_env(profile), echo=note)
            launcher.wait_ready()
            note(f"node: {launcher.ready_line}")  # which input size it runs at, and where that came from
        if record is not None:
            recorder = RecorderThread(args.record, args.storage)  # writes NAME.partial, renamed when closed
        with progress(desc="hypood replay", unit="frame") as bar:
            summary = replayer.run(recorder, bar)
        ok = True
    finally:
        summary_record = recorder.close(success=ok) if recorder is not None else None
        if launcher is not None:
            launcher.stop()
        if record is not None:
            record.release() if ok else record.discard()
    if recorder is not None:
        summary.record = summary_record
    print("\n".join(summary.lines()))
    return 0 if summary.answered.get(topics.PRIMARY, 0) > 0 else 1
