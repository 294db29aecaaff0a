"""The `hypood` node: camera frames in; semantic map, OOD score and obstacle mask out.

Threading: the subscription callback only validates the header and parks the message in its camera's
mailbox: by default one slot (a newer frame replaces a waiting one and counts as dropped), or up to
`frame_queue` frames, oldest first. A worker thread takes the oldest waiting frame of every camera
(node/cameras.py), converts them, runs them through the frame pipeline as one batch and publishes each
camera's results, so inference never blocks the executor and no queue grows past its bound.

Start and stop: every start-up failure (parameters, device, model) is one line on stderr and exit 1; a
warm-up frame runs before the node says it is ready. SIGINT and SIGTERM stop the worker while the ROS
context is still valid (the frame in hand is finished, a waiting one dropped), then the node logs one
line and exits 0.

Stages: `load` (every camera's pose parameters checked, the model loaded and warmed up with one frame per
camera) and `open` (every camera's subscription and outputs, the obstacle outputs, the worker, the timer)
are what the constructor does; `close` and `unload` undo them. The lifecycle node (node/managed.py) runs
the four as its transitions.
"""
from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import threading
import time
from typing import List, Optional

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, ShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from hypood_ros import topics
from hypood_ros.conversion import image_to_rgb
from hypood_ros.devices import check_device
from hypood_ros.errors import BackendError, ConfigError, FrameError, HypoodError
from hypood_ros.images import decode_image
from hypood_ros.memory import keep_freed_memory
from hypood_ros.node.cameras import CameraChannel, Mailboxes, declare_pose
from hypood_ros.node.obstacles import ObstacleOutputs
from hypood_ros.node.parameters import (
    BY_NAME,
    CONFIG_FIELDS,
    declare_all,
    pipeline_config,
    prepare_request,
    score_change_problem,
)
from hypood_ros.node.params_files import params_files
from hypood_ros.node.params_files import read as read_params_file
from hypood_ros.node.qos import describe as describe_qos
from hypood_ros.node.qos import publisher as qos_publisher
from hypood_ros.node.qos import qos
from hypood_ros.node.side_outputs import label_info_publisher
from hypood_ros.pipeline import FramePipeline
from hypood_ros.roi import GEOMETRY_MODES, load_ego_mask
from hypood_ros.runtimes import resolve_input_size
from hypood_ros.runtimes.engine_cache import load_or_build
from hypood_ros.scores import load_sml_stats

CLASSES_TOPIC = topics.CLASSES
LOG_THROTTLE_S = 5.0
STOP_WAIT_S = 10.0  # how long shutdown waits for the frame in hand before dropping it


def working_cv_bridge():
    """cv_bridge if it is installed and converts correctly (the PyPI package is a broken ROS 1 copy)."""
    try:
        from cv_bridge import CvBridge

        bridge = CvBridge()
        probe = Image(height=1, width=2, encoding="bgr8", step=6, data=bytes([1, 2, 3, 4, 5, 6]))
        if bridge.imgmsg_to_cv2(probe, desired_encoding="rgb8").tolist() == [[[3, 2, 1], [6, 5, 4]]]:
            return bridge
    except Exception:  # any import or run-time failure means: use our own conversion
        pass
    return None


class HypoodNode(Node):
    def __init__(self, argv: Optional[List[str]] = None, managed: bool = False, **kwargs) -> None:
        """`argv`: the command line rclpy was started with (its parameter files are checked for this node).
        `managed`: only declare the parameters; `load` and `open` come later (the lifecycle node's configure
        and activate); the plain node does both here."""
        super().__init__("hypood", **kwargs)
        self._values, self._thresholds, warnings = declare_all(self, sys.argv if argv is None else argv)
        for text in warnings:
            self.get_logger().warning(text)
        self._pipeline: Optional[FramePipeline] = None
        self._opened = False
        # the score_thresholds file holds for the local contrast the node started with only
        contrast = self._values["local_contrast"]
        self.add_pre_set_parameters_callback(lambda params: prepare_request(params, self._values, self._thresholds,
                                                                            contrast))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if not managed:
            self.load()
            self.open()

    def load(self) -> None:
        """The model, checked and warmed up (the engine built or checked first); raises a HypoodError."""
        values = self._values
        cameras = topics.camera_names(values["cameras"]) or ("",)  # '': the single camera, unprefixed topics
        for name in cameras:  # each camera's pose parameters, checked before the model loads
            declare_pose(self, name, values)
        if not values["model"]:
            raise ConfigError("parameter 'model' is empty: give a checkpoint, ONNX file or engine")
        device = check_device(values["device"])
        config = pipeline_config(values)
        stats = load_sml_stats(values["sml_stats"]) if values["sml_stats"] else None
        ego = load_ego_mask(values["ego_mask"]) if values["ego_mask"] else None
        # input_height/input_width 0: the size the checkpoint records (the CLI's rule: resolve_input_size)
        size = resolve_input_size(values["model"], values["input_height"], values["input_width"],
                                  backend=values["backend"] or None, engine=values["engine"])
        if size.note:
            self.get_logger().warning(size.note)
        self._input_source = size.source
        backend = load_or_build(values["model"], values["engine"], values["rebuild_engine"], self.get_logger().info,
                                backend=values["backend"] or None, device=device, input_hw=size.hw,
                                fp16=values["fp16"], bf16=values["bf16"])
        pipeline = FramePipeline(backend, config, sml_stats=stats, ego_mask=ego)
        try:
            warning = pipeline.warm_up(frames=len(cameras))  # the batch the cameras make together
        except Exception as exc:  # e.g. out of device memory: the node could not run a single frame
            backend.close()
            if isinstance(exc, HypoodError):
                raise
            raise BackendError(f"the warm-up frame failed: {type(exc).__name__}: {first_line(exc)}") from None
        if warning:
            self.get_logger().warning(warning)
        self._pipeline = pipeline
        self._bridge = working_cv_bridge()
        self._camera_names = cameras

    def open(self) -> None:
        """Every camera's subscription and outputs, the obstacle outputs, the inference thread and diagnostics:
        frames are taken from now on. A failure half way (e.g. a bad QoS override on a later camera) takes
        what this call made off the node again before it raises, so a lifecycle activate can be retried."""
        before = self._entities()
        self._obstacles = None
        self._worker = None
        try:
            self._open()
        except BaseException:
            self._undo_open(before)
            raise

    def _entities(self) -> set:
        return {id(e) for e in (*self.publishers, *self.subscriptions, *self.timers)}

    def _undo_open(self, before: set) -> None:
        if self._worker is not None:
            self._mailboxes.stop()
            self._worker.join(timeout=STOP_WAIT_S)
        if self._obstacles is not None:
            self._obstacles.close()
        for entity in [e for e in self.timers if id(e) not in before]:
            self.destroy_timer(entity)
        for entity in [e for e in self.subscriptions if id(e) not in before]:
            self.destroy_subscription(entity)
        for entity in [e for e in self.publishers if id(e) not in before]:
            self.destroy_publisher(entity)

    def _open(self) -> None:
        values = self._values
        self._last_log = 0.0
        output_qos = qos(values["output_reliability"], values["output_depth"])
        input_qos = qos("reliable" if values["input_qos"] == "reliable" else "best_effort", values["input_depth"])
        self._diagnostics = qos_publisher(self, DiagnosticArray, "/diagnostics", qos("reliable", 10))
        # once per node, whatever its cameras: they share the model and so its classes
        self._classes = qos_publisher(self, String, CLASSES_TOPIC, qos("reliable", 1, latched=True))
        self._classes.publish(String(data=self._pipeline.classes.to_json()))
        self._label_info = label_info_publisher(self, self._pipeline.classes)
        self._mailboxes = Mailboxes(values["batch_window"], values["frame_queue"])
        # the poses as they are now (a camera's own pose may have changed since load)
        poses = {name: declare_pose(self, name, self._values) for name in self._camera_names}
        self._cameras = [CameraChannel(self, name, poses[name], values, input_qos, output_qos, self._mailboxes,
                                       self._bad) for name in self._camera_names]
        self._obstacles = ObstacleOutputs(self, values, output_qos, cameras={c.name: c.pose for c in self._cameras})

        self._batches = [0, 0]  # batches through the pipeline, frames in them
        self._publish_lock = threading.Lock()
        self._closed = False  # set once stopping: nothing is published after it
        self._mailboxes.channels = self._cameras
        self._worker = threading.Thread(target=self._work, name="hypood-inference", daemon=True)
        self._worker.start()
        # Steady clock: diagnostics keep coming while a replayed bag's /clock pauses (use_sim_time).
        self._timer = self.create_timer(values["diagnostics_period"], self._publish_diagnostics,
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._opened = True
        backend, config = self._pipeline.backend, self._pipeline.config
        shape = backend.input_shape
        self.get_logger().info(
            f"ready: {backend.name} backend ({backend.precision}) on {backend.device}, input {shape[2]}x{shape[3]} "
            f"({self._input_source}), score {config.score}, {self._pipeline.classes.num_classes} classes, listening on "
            + ", ".join(f"{c.subscription.topic_name} ({describe_qos(c.subscription.qos_profile)})"
                        for c in self._cameras))

    # -- input ---------------------------------------------------------------------------------------
    def _bad(self, camera: CameraChannel, reason: str) -> None:
        camera.stats.on_bad(reason)
        self._log_throttled(f"skipped a frame{' of ' + camera.name if camera.name else ''}: {reason}")

    def _log_throttled(self, text: str, error: bool = False) -> None:
        now = time.monotonic()
        if now - self._last_log >= LOG_THROTTLE_S:
            self._last_log = now
            (self.get_logger().error if error else self.get_logger().warning)(text)

    def _to_rgb(self, msg):
        if isinstance(msg, CompressedImage):
            return decode_image(bytes(msg.data))
        if self._bridge is not None:
            try:
                return self._bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")
            except Exception:  # fall through to our own conversion, which raises a clear FrameError
                pass
        return image_to_rgb(msg.height, msg.width, msg.encoding, msg.step, msg.data, msg.is_bigendian)

    # -- inference -----------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            batch = self._mailboxes.take()
            if batch is None:
                return
            frames = []  # (camera, message, arrival, rgb, corridor, why there is no corridor)
            for camera, msg, received in batch:
                try:
                    rgb = self._to_rgb(msg)
                    corridor, why = None, ""
                    if self._pipeline.config.roi in GEOMETRY_MODES:
                        corridor, why = self._obstacles.corridor(msg.header, rgb.shape[:2], camera.name)
                    frames.append((camera, msg, received, rgb, corridor, why or "no corridor"))
                except FrameError as exc:
                    self._bad(camera, str(exc))
                except Exception as exc:  # keep running whatever one frame does; counted and reported
                    self._failed(camera, f"{type(exc).__name__}: {exc}")
            if not frames:
                continue
            try:
                results = self._pipeline.process_batch([f[3] for f in frames], [f[4] for f in frames])
            except FrameError as exc:
                for camera, *_ in frames:
                    self._bad(camera, str(exc))
                continue
            except Exception as exc:  # keep running whatever one batch does; counted and reported per camera
                for camera, *_ in frames:
                    self._failed(camera, f"{type(exc).__name__}: {exc}")
                continue
            self._batches = [self._batches[0] + 1, self._batches[1] + len(frames)]
            for (camera, *_, why), result in zip(frames, results):
                camera.roi_state = (why if result.roi_fallback else "",
                                    None if result.region is None else float(result.region.mean()))
            self._publish([(camera, msg.header, result, received)
                           for (camera, msg, received, *_), result in zip(frames, results)])

    def _failed(self, camera: CameraChannel, reason: str) -> None:
        camera.stats.on_error(reason)
        self._log_throttled(f"inference failed on a frame{' of ' + camera.name if camera.name else ''}: {reason}",
                            error=True)

    def _publish(self, answered) -> None:
        """Each camera's outputs of one batch ((camera, header, result, arrival) each), then the obstacles of
        all of them (one grid update)."""
        with self._publish_lock:
            if self._closed:  # stopping: the context may already be gone
                return
            done = []
            for camera, header, result, received in answered:
                try:
                    camera.publish(header, result, self._values, self._obstacles.info_for(header, camera.name))
                    done.append((camera, header, received))
                except Exception as exc:  # e.g. the ROS context went away under us: counted, never fatal
                    camera.stats.on_error(f"publishing failed: {type(exc).__name__}: {exc}")
                    self._log_throttled(f"publishing failed: {type(exc).__name__}: {exc}", error=True)
            # never raises
            self._obstacles.process_batch([(camera.name, header, result.mask, result.score)
                                           for camera, header, result, _ in answered])
        for camera, header, received in done:
            camera.stats.on_published(time.monotonic() - received, self._stamp_latency(header))

    def _stamp_latency(self, header):
        """now - header stamp, only where both clocks agree: sim time, or a live camera on this machine."""
        clock = self.get_clock()
        if not (self._values["live_camera"] or clock.ros_time_is_active):
            return None
        stamp = Time.from_msg(header.stamp, clock_type=clock.clock_type)
        now = clock.now()
        if stamp.nanoseconds <= 0 or now.nanoseconds <= 0:  # no stamp, or sim time before the first /clock
            return None
        return (now - stamp).nanoseconds * 1e-9

    # -- parameters and diagnostics ------------------------------------------------------------------
    def _on_set_parameters(self, params) -> SetParametersResult:
        values = dict(self._values)
        for param in params:
            spec = BY_NAME.get(param.name)
            if spec is None:
                continue
            if not spec.dynamic:
                return SetParametersResult(successful=False,
                                           reason=f"{param.name} is fixed at start; restart the node to change it")
            values[param.name] = param.value
        try:
            config = pipeline_config(values)
            problem = score_change_problem(self._values, params)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
            if self._pipeline is not None:  # unconfigured: the values apply at configure
                self._pipeline.update(outputs=config.outputs, **{name: getattr(config, name) for name in CONFIG_FIELDS})
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._values = values
        return SetParametersResult(successful=True)

    def _publish_diagnostics(self) -> None:
        """One status per camera (its own counts, rates, latency and region), then the obstacle statuses."""
        backend = self._pipeline.backend
        info = {"backend": backend.name, "precision": backend.precision, "device": str(backend.device),
                "model": self._values["model"],
                "input_size": "x".join(map(str, backend.input_shape[2:])), "input_size_source": self._input_source,
                "score": self._pipeline.config.score, "threshold": self._pipeline.config.threshold}
        batches, frames = self._batches
        if len(self._cameras) > 1:  # how well the cameras share forward passes (node-wide)
            info.update(batch_window=self._values["batch_window"],
                        frames_per_batch=frames / batches if batches else float("nan"))
        hardware_id = self.get_fully_qualified_name()
        statuses = [camera.status(self.get_name(), hardware_id, info, self._pipeline.config.roi)
                    for camera in self._cameras]
        array = DiagnosticArray(status=statuses + self._obstacles.diagnostics(self.get_name(), hardware_id))
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(array)

    def close(self) -> None:
        """Stop taking frames while the context is valid (the batch in hand is finished, waiting frames dropped),
        then take every camera's subscription and outputs, the obstacle outputs and the timer off the node; the
        model stays loaded."""
        if not self._opened:
            return
        self._opened = False
        self._mailboxes.stop()
        self._worker.join(timeout=STOP_WAIT_S)
        with self._publish_lock:
            self._closed = True
        self.destroy_timer(self._timer)
        for camera in self._cameras:
            camera.close()
        self._obstacles.close()
        for pub in (self._diagnostics, self._classes, self._label_info):
            if pub is not None:
                self.destroy_publisher(pub)

    def unload(self) -> None:
        """Free the model (the lifecycle node's cleanup)."""
        if self._pipeline is not None:
            self._pipeline.backend.close()
            self._pipeline = None

    def stop(self) -> None:
        """Close and unload: what the node does once on its way out."""
        self.close()
        self.unload()

    def summary(self) -> str:
        if not hasattr(self, "_cameras"):
            return "no frames taken"
        snaps = [camera.stats.snapshot() for camera in self._cameras]
        total = {key: sum(snap[key] for snap in snaps) for key in ("frames_received", "frames_processed",
                                                                   "frames_dropped", "bad_messages",
                                                                   "inference_errors")}
        return (f"{total['frames_received']} frames received, {total['frames_processed']} processed, "
                f"{total['frames_dropped']} dropped, {total['bad_messages']} bad, {total['inference_errors']} failed"
                + (f" ({len(self._cameras)} cameras)" if len(self._cameras) > 1 else ""))


class StopSignals:
    """SIGINT/SIGTERM: during start they interrupt (KeyboardInterrupt); once running they ask the loop to stop."""

    def __init__(self) -> None:
        self.received = None
        self.running = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name
        if not self.running:
            raise KeyboardInterrupt


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def init_ros(args) -> None:
    """rclpy.init without its own signal handlers, and with rcl's error lines held back: a parameter file
    that does not parse becomes one ConfigError line instead of rcl's log lines and a traceback. Parameter files
    are read first, so that a missing file or a YAML mistake is said in those words (rcl says only that it
    could not parse the file)."""
    for path in params_files(sys.argv if args is None else list(args)):
        read_params_file(path)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        except RuntimeError as exc:  # rclpy's RCLError
            text = re.sub(r", at \S+:\d+", "", first_line(exc))
            raise ConfigError(f"cannot start ROS: {text}") from None
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)
        other = held.read()
    if other:  # whatever rcl printed on success (warnings) is not lost
        sys.stderr.buffer.write(other)
        sys.stderr.flush()


def main(args=None, node_class=None) -> int:
    """`node_class`: HypoodNode, or the lifecycle node (hypood_ros.node.managed), which starts unconfigured."""
    keep_freed_memory()  # before the first frame's allocations (hypood_ros/memory.py)
    signals = StopSignals()
    try:
        init_ros(args)
        node = (node_class or HypoodNode)(args)
    except KeyboardInterrupt:
        print(f"hypood_node: stopped by {signals.received or 'SIGINT'} while starting", file=sys.stderr)
        rclpy.try_shutdown()
        return 0
    except (HypoodError, ParameterException) as exc:
        print(f"hypood_node: error: {first_line(exc)}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    signals.running = True
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while signals.received is None and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (ExternalShutdownException, ShutdownException):
        pass
    finally:
        node.stop()
        node.get_logger().info(f"stopped ({signals.received or 'ROS shutdown'}): {node.summary()}")
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
