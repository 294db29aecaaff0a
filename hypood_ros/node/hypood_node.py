"""The `hypood` node: camera frames in; semantic map, OOD score and obstacle mask out.

Threading: the subscription callback only validates the header and parks the message in a one-slot
mailbox (a newer frame replaces a waiting one and counts as dropped). A worker thread converts, runs the
frame pipeline and publishes, so inference never blocks the executor and the queue can never grow.

Start and stop: every start-up failure (parameters, device, model) is one line on stderr and exit 1; a
warm-up frame runs before the node says it is ready. SIGINT and SIGTERM stop the worker while the ROS
context is still valid (the frame in hand is finished, a waiting one dropped), then the node logs one
line and exits 0.
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
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, ShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from hypood_ros import topics
from hypood_ros.conversion import check_image_fields, image_to_rgb, rgb_fields
from hypood_ros.devices import check_device
from hypood_ros.errors import BackendError, ConfigError, FrameError, HypoodError
from hypood_ros.images import decode_image
from hypood_ros.node.obstacles import ObstacleOutputs
from hypood_ros.node.parameters import (
    BY_NAME,
    CONFIG_FIELDS,
    declare_all,
    pipeline_config,
    prepare_request,
    score_change_problem,
)
from hypood_ros.node.stats import FrameStats
from hypood_ros.pipeline import FramePipeline
from hypood_ros.roi import GEOMETRY_MODES, load_ego_mask
from hypood_ros.runtimes import resolve_input_size
from hypood_ros.runtimes.engine_cache import load_or_build
from hypood_ros.scores import load_sml_stats

OUTPUT_TOPICS = topics.IMAGE_OUTPUTS
CLASSES_TOPIC = topics.CLASSES
LOG_THROTTLE_S = 5.0
STOP_WAIT_S = 10.0  # how long shutdown waits for the frame in hand before dropping it


def qos(reliability: str, depth: int, latched: bool = False) -> QoSProfile:
    """A keep-last profile from the node's QoS parameters (best_effort | reliable)."""
    policy = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


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
    def __init__(self, argv: Optional[List[str]] = None, **kwargs) -> None:
        """`argv`: the command line rclpy was started with (its parameter files are checked for this node)."""
        super().__init__("hypood", **kwargs)
        self._values, self._thresholds, warnings = declare_all(self, sys.argv if argv is None else argv)
        for text in warnings:
            self.get_logger().warning(text)
        values = self._values
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
        self._pipeline = FramePipeline(backend, config, sml_stats=stats, ego_mask=ego)
        try:
            warning = self._pipeline.warm_up()
        except HypoodError:
            raise
        except Exception as exc:  # e.g. out of device memory: the node could not run a single frame
            raise BackendError(f"the warm-up frame failed: {type(exc).__name__}: {first_line(exc)}") from None
        if warning:
            self.get_logger().warning(warning)
        self._bridge = working_cv_bridge()
        self._stats = FrameStats()
        self._reported_errors = self._reported_bad = 0
        self._last_log = 0.0

        output_qos = qos(values["output_reliability"], values["output_depth"])
        self._outputs = {name: self.create_publisher(Image, topic, output_qos) for name, topic in OUTPUT_TOPICS.items()}
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._classes = self.create_publisher(String, CLASSES_TOPIC, qos("reliable", 1, latched=True))
        self._classes.publish(String(data=self._pipeline.classes.to_json()))
        self._obstacles = ObstacleOutputs(self, values, output_qos)

        self._roi_state = ("", None)  # why the corridor was missing in the last frame, the region's share of it
        self._mailbox = None
        self._condition = threading.Condition()
        self._running = True
        self._publish_lock = threading.Lock()
        self._closed = False  # set once stopping: nothing is published after it
        self._worker = threading.Thread(target=self._work, name="hypood-inference", daemon=True)
        self._worker.start()

        input_qos = qos("reliable" if values["input_qos"] == "reliable" else "best_effort", values["input_depth"])
        if values["input_type"] == "raw":
            self._subscription = self.create_subscription(Image, topics.IMAGE, self._on_image, input_qos)
        else:
            self._subscription = self.create_subscription(CompressedImage, topics.IMAGE_COMPRESSED, self._on_compressed,
                                                          input_qos)
        self.add_pre_set_parameters_callback(lambda params: prepare_request(params, self._values, self._thresholds))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Steady clock: diagnostics keep coming while a replayed bag's /clock pauses (use_sim_time).
        self.create_timer(values["diagnostics_period"], self._publish_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        shape = backend.input_shape
        self.get_logger().info(
            f"ready: {backend.name} backend ({backend.precision}) on {backend.device}, input {shape[2]}x{shape[3]} "
            f"({size.source}), score {config.score}, {self._pipeline.classes.num_classes} classes, listening on "
            f"{self._subscription.topic_name} "
            f"({values['input_qos']}, depth {values['input_depth']})")

    # -- input ---------------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        try:
            check_image_fields(msg.height, msg.width, msg.encoding, msg.step, len(msg.data))
        except FrameError as exc:
            self._bad(str(exc))
            return
        self._offer(msg)

    def _on_compressed(self, msg: CompressedImage) -> None:
        if len(msg.data) == 0:
            self._bad("compressed image with no data")
            return
        self._offer(msg)

    def _offer(self, msg) -> None:
        with self._condition:
            replaced = self._mailbox is not None
            self._mailbox = (msg, time.monotonic())
            self._condition.notify()
        self._stats.on_received(replaced)

    def _bad(self, reason: str) -> None:
        self._stats.on_bad(reason)
        self._log_throttled(f"skipped a frame: {reason}")

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
            with self._condition:
                while self._mailbox is None and self._running:
                    self._condition.wait()
                if not self._running:
                    return
                msg, received = self._mailbox
                self._mailbox = None
            try:
                rgb = self._to_rgb(msg)
                corridor, why = None, ""
                if self._pipeline.config.roi in GEOMETRY_MODES:
                    corridor, why = self._obstacles.corridor(msg.header, rgb.shape[:2])
                result = self._pipeline.process(rgb, corridor)
                self._roi_state = ((why or "no corridor") if result.roi_fallback else "",
                                   None if result.region is None else float(result.region.mean()))
            except FrameError as exc:
                self._bad(str(exc))
                continue
            except Exception as exc:  # keep running whatever one frame does; counted and reported
                self._stats.on_error(f"{type(exc).__name__}: {exc}")
                self._log_throttled(f"inference failed on a frame: {type(exc).__name__}: {exc}", error=True)
                continue
            self._publish(msg.header, result, received)

    def _publish(self, header, result, received: float) -> None:
        with self._publish_lock:
            if self._closed:  # stopping: the context may already be gone
                return
            try:
                for name, publisher in self._outputs.items():
                    image = getattr(result, name)
                    if image is None or not self._values[f"publish_{name}"]:
                        continue
                    encoding, step, data = rgb_fields(image)
                    out = Image(header=header, height=image.shape[0], width=image.shape[1], encoding=encoding,
                                is_bigendian=0, step=step)
                    out.data = data
                    publisher.publish(out)
                self._obstacles.process(header, result.mask, result.score)  # never raises
            except Exception as exc:  # e.g. the ROS context went away under us: counted, never fatal
                self._stats.on_error(f"publishing failed: {type(exc).__name__}: {exc}")
                self._log_throttled(f"publishing failed: {type(exc).__name__}: {exc}", error=True)
                return
        self._stats.on_published(time.monotonic() - received, self._stamp_latency(header))

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
            self._pipeline.update(outputs=config.outputs, **{name: getattr(config, name) for name in CONFIG_FIELDS})
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._values = values
        return SetParametersResult(successful=True)

    def _publish_diagnostics(self) -> None:
        snap = self._stats.snapshot()
        errors, bad = snap["inference_errors"], snap["bad_messages"]
        if errors > self._reported_errors:
            level, message = DiagnosticStatus.ERROR, f"inference failed: {snap['last_error']}"
        elif bad > self._reported_bad:
            level, message = DiagnosticStatus.WARN, f"bad input: {snap['last_error']}"
        else:
            level, message = DiagnosticStatus.OK, "running"
        roi = self._pipeline.config.roi
        fallback, share = self._roi_state
        if fallback and level == DiagnosticStatus.OK:
            level, message = DiagnosticStatus.WARN, f"roi {roi} needs the corridor: {fallback}; the road region is used"
        self._reported_errors, self._reported_bad = errors, bad
        backend = self._pipeline.backend
        info = {"backend": backend.name, "precision": backend.precision, "device": str(backend.device),
                "model": self._values["model"],
                "input_size": "x".join(map(str, backend.input_shape[2:])), "input_size_source": self._input_source,
                "score": self._pipeline.config.score,
                "threshold": self._pipeline.config.threshold, "roi": roi if not fallback else f"{roi} (road used)",
                "roi_share": "whole picture" if share is None else f"{share:.3f}"}
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: OOD segmentation", message=message,
                                  hardware_id=self.get_fully_qualified_name())
        status.values = [KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v))
                         for k, v in {**snap, **info}.items()]
        array = DiagnosticArray(status=[status] + self._obstacles.diagnostics(self.get_name(), status.hardware_id))
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(array)

    def stop(self) -> None:
        """Stop the worker while the context is valid: the frame in hand is finished, a waiting one dropped."""
        with self._condition:
            self._running = False
            self._mailbox = None
            self._condition.notify_all()
        self._worker.join(timeout=STOP_WAIT_S)
        with self._publish_lock:
            self._closed = True
        self._pipeline.backend.close()

    def summary(self) -> str:
        snap = self._stats.snapshot()
        return (f"{snap['frames_received']} frames received, {snap['frames_processed']} processed, "
                f"{snap['frames_dropped']} dropped, {snap['bad_messages']} bad, {snap['inference_errors']} failed")


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
    that does not parse becomes one ConfigError line instead of rcl's log lines and a traceback."""
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


def main(args=None) -> int:
    signals = StopSignals()
    try:
        init_ros(args)
        node = HypoodNode(args)
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
