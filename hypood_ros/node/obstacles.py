"""Node glue for the obstacle outputs: camera_info, odometry and TF in; ood/obstacles, ood/grid, ood/markers out.

The geometry itself is `hypood_ros.geometry` (ROS-free). Here: matching a frame with its camera_info
(by stamp, within `camera_info_tolerance`) and odometry, the camera pose from TF or parameters, message
building, and a diagnostics status saying why nothing was published when something is missing. A
problem with one frame is reported and skipped; the mask outputs never depend on this module.
"""
from __future__ import annotations

import array
import math
import threading
from collections import deque
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, TransformStamped
from nav_msgs.msg import OccupancyGrid, Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.duration import Duration
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, PointCloud2, PointField
from visualization_msgs.msg import Marker, MarkerArray

from hypood_ros import topics
from hypood_ros.defaults import BY_NAME, GEOMETRY_OUTPUTS
from hypood_ros.errors import ConfigError, HypoodError
from hypood_ros.geometry import (
    CameraError,
    CameraModel,
    CameraPose,
    GridConfig,
    LocalGrid,
    Obstacles,
    corridor_mask,
    find_obstacles,
    to_frame,
)
from hypood_ros.node.qos import publisher, subscription

TOPICS = topics.OBSTACLE_OUTPUTS
POSE_PARAMS = ("camera_height", "camera_roll", "camera_pitch", "camera_yaw", "camera_x", "camera_y")
GRID_PARAMS = ("grid_size", "grid_resolution", "grid_hit", "grid_miss", "grid_decay", "grid_occupied", "grid_free")
HISTORY = 50  # camera_info and odometry messages kept for stamp matching
TF_TIMEOUT = Duration(seconds=0.05)
CLOUD_FIELDS = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                for i, n in enumerate(("x", "y", "z", "score"))]


def load_tf2():
    """The tf2_ros module when it is installed (distribution ROS), else None."""
    try:
        import tf2_ros
    except ImportError:
        return None
    return tf2_ros


def stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def nearest(history, when: int, tolerance: float):
    """The entry of `history` ((stamp_ns, value) pairs) nearest to `when`, if within `tolerance` seconds."""
    best = min(history, key=lambda e: abs(e[0] - when), default=None)
    if best is None or abs(best[0] - when) > tolerance * 1e9:
        return None
    return best[1]


def yaw_of(q) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def pose_from_transform(msg: TransformStamped) -> CameraPose:
    """TF's base_frame <- image frame transform as the camera pose."""
    t, q = msg.transform.translation, msg.transform.rotation
    return CameraPose.from_transform((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))


class ObstacleOutputs:
    """Created by the node; `process` is called by its worker thread after each frame's mask."""

    def __init__(self, node, values: Dict[str, Any], output_qos: Optional[QoSProfile] = None) -> None:
        self._node = node
        self._values = dict(values)
        self._lock = threading.Lock()
        self._infos: deque = deque(maxlen=HISTORY)
        self._odom: deque = deque(maxlen=HISTORY)
        self._camera_key: Optional[tuple] = None
        self._camera: Optional[CameraModel] = None
        self._camera_error = ""
        self._grid = LocalGrid(self._grid_config(values))
        self._grid_frame = ""
        self._pose = self._parameter_pose(values)
        self._state = {"level": DiagnosticStatus.OK, "message": "waiting for frames"}
        self._counts = {"frames": 0, "skipped": 0, "obstacles": 0, "dropped_above_horizon": 0, "dropped_too_far": 0}

        self._tf_buffer = None
        tf2 = load_tf2()
        source = values["pose_source"]
        if source == "tf" and tf2 is None:
            raise ConfigError("pose_source is 'tf' but tf2_ros is not installed; install it or set "
                              "pose_source:=parameters")
        self.pose_source = "tf" if source == "tf" or (source == "auto" and tf2 is not None) else "parameters"
        if self.pose_source == "tf":
            self._tf_buffer = tf2.Buffer()
            self._tf_listener = tf2.TransformListener(self._tf_buffer, node)

        qos = output_qos or QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self._publishers = {
            "obstacles": publisher(node, PointCloud2, TOPICS["obstacles"], qos),
            "grid": publisher(node, OccupancyGrid, TOPICS["grid"], qos),
            "markers": publisher(node, MarkerArray, TOPICS["markers"], qos),
        }
        self._info_sub = subscription(node, CameraInfo, topics.CAMERA_INFO, self._on_info, qos_profile_sensor_data)
        self._odom_sub = subscription(node, Odometry, topics.ODOM, self._on_odom, qos_profile_sensor_data)
        node.add_on_set_parameters_callback(self._on_set_parameters)

    # -- configuration -------------------------------------------------------------------------------
    @staticmethod
    def _grid_config(values) -> GridConfig:
        return GridConfig(**{name[len("grid_"):]: values[name] for name in GRID_PARAMS})

    @staticmethod
    def _parameter_pose(values) -> CameraPose:
        return CameraPose.from_parameters(values["camera_height"], values["camera_roll"], values["camera_pitch"],
                                          values["camera_yaw"], values["camera_x"], values["camera_y"])

    def enabled(self) -> bool:
        return any(self._values[f"publish_{name}"] for name in GEOMETRY_OUTPUTS)

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Run-time changes of the dynamic parameters (the node's own callback refuses the static ones)."""
        values = dict(self._values)
        for param in params:
            spec = BY_NAME.get(param.name)
            if spec is not None and spec.dynamic:
                values[param.name] = param.value
        try:
            pose = self._parameter_pose(values)
            grid = self._grid_config(values)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        with self._lock:
            self._values, self._pose = values, pose
            self._grid.reconfigure(grid)  # grid_size and grid_resolution are static
        return SetParametersResult(successful=True)

    # -- inputs --------------------------------------------------------------------------------------
    def _on_info(self, msg: CameraInfo) -> None:
        with self._lock:
            self._infos.append((stamp_ns(msg.header.stamp), msg))

    def _on_odom(self, msg: Odometry) -> None:
        pose = msg.pose.pose
        with self._lock:
            self._odom.append((stamp_ns(msg.header.stamp),
                               (pose.position.x, pose.position.y, yaw_of(pose.orientation), msg.header.frame_id)))

    def _camera_for(self, info: CameraInfo, rectified: bool) -> CameraModel:
        """The camera model of a camera_info; the model (or the reason it is refused) is kept while the
        message's contents stay the same."""
        key = (info.width, info.height, tuple(info.k), tuple(info.d), info.distortion_model, tuple(info.p),
               info.binning_x, info.binning_y, info.roi.width, info.roi.height, rectified)
        if key != self._camera_key:
            self._camera_key, self._camera, self._camera_error = key, None, ""
            try:
                roi = (info.roi.width, info.roi.height)
                if info.binning_x > 1 or info.binning_y > 1 or (all(roi) and roi != (info.width, info.height)):
                    raise CameraError("camera_info with binning or a region of interest is not supported")
                self._camera = CameraModel.from_camera_info(info.width, info.height, list(info.k), list(info.d),
                                                            info.distortion_model, list(info.p), rectified)
            except CameraError as exc:
                self._camera_error = str(exc)
        if self._camera is None:
            raise CameraError(self._camera_error)
        return self._camera

    def info_for(self, header) -> Optional[CameraInfo]:
        """The camera_info matched to a frame (nearest stamp within camera_info_tolerance), or None."""
        with self._lock:
            return nearest(self._infos, stamp_ns(header.stamp), self._values["camera_info_tolerance"])

    def close(self) -> None:
        """Take the outputs, inputs and parameter callback off the node (a lifecycle node's deactivate)."""
        node = self._node
        node.remove_on_set_parameters_callback(self._on_set_parameters)
        for pub in self._publishers.values():
            node.destroy_publisher(pub)
        node.destroy_subscription(self._info_sub)
        node.destroy_subscription(self._odom_sub)
        listener = getattr(self, "_tf_listener", None)
        if listener is not None and hasattr(listener, "unregister"):
            listener.unregister()

    def _camera_pose(self, header, base_frame: str) -> CameraPose:
        if self._tf_buffer is None:
            return self._pose
        return pose_from_transform(
            self._tf_buffer.lookup_transform(base_frame, header.frame_id, Time.from_msg(header.stamp), TF_TIMEOUT))

    # -- per frame -----------------------------------------------------------------------------------
    def corridor(self, header, shape) -> Tuple[Optional[np.ndarray], str]:
        """The corridor ahead (roi corridor / road_corridor) as a bool mask of the frame's size from the
        camera_info and pose of this frame, or (None, the reason there is none); never raises."""
        try:
            with self._lock:
                values = self._values
                info = nearest(self._infos, stamp_ns(header.stamp), values["camera_info_tolerance"])
                any_info = bool(self._infos)
            if info is None:
                return None, (f"no camera_info within {values['camera_info_tolerance']} s of the image stamp"
                              if any_info else "no camera_info received on " + self._info_sub.topic_name)
            camera = self._camera_for(info, values["image_rectified"])
            camera.check_size(*shape)
            pose = self._camera_pose(header, values["base_frame"])
            return corridor_mask(camera, pose, values["corridor_half_width"], values["max_range"],
                                 values["corridor_height"], values["corridor_min_range"]), ""
        except HypoodError as exc:
            return None, str(exc)
        except Exception as exc:  # TF lookups raise their own exception types
            return None, f"{type(exc).__name__}: {exc}"

    def process(self, header, mask: Optional[np.ndarray], score: Optional[np.ndarray]) -> Optional[Obstacles]:
        """Never raises: whatever is missing is reported in diagnostics and the frame is skipped here."""
        if not self.enabled():
            self._report(DiagnosticStatus.OK, "obstacle outputs off")
            return None
        try:
            return self._process(header, mask, score)
        except HypoodError as exc:
            self._skip(DiagnosticStatus.ERROR, str(exc))
        except Exception as exc:  # TF lookups raise their own exception types; nothing may stop the worker
            self._skip(DiagnosticStatus.WARN, f"{type(exc).__name__}: {exc}")
        return None

    def _process(self, header, mask, score) -> Optional[Obstacles]:
        with self._lock:
            values = self._values
            when = stamp_ns(header.stamp)
            info = nearest(self._infos, when, values["camera_info_tolerance"])
            odom = nearest(self._odom, when, values["odom_tolerance"])
            any_info = bool(self._infos)
        if mask is None:
            raise ConfigError("no mask for this frame")
        if info is None:
            self._skip(DiagnosticStatus.WARN,
                       f"no camera_info within {values['camera_info_tolerance']} s of the image stamp" if any_info
                       else "no camera_info received on " + self._info_sub.topic_name)
            return None
        camera = self._camera_for(info, values["image_rectified"])
        camera.check_size(*mask.shape)
        base = values["base_frame"]
        pose = self._camera_pose(header, base)
        want_grid = values["publish_grid"]
        found = find_obstacles(mask, camera, pose, values["max_range"], score, free_space=want_grid)
        if values["publish_obstacles"]:
            self._publishers["obstacles"].publish(self.cloud(header.stamp, base, found))
        if values["publish_markers"]:
            self._publishers["markers"].publish(self.markers(header.stamp, base, found))
        if want_grid:
            self._publishers["grid"].publish(self._update_grid(header.stamp, base, found, odom))
        with self._lock:
            c = self._counts
            c["frames"] += 1
            c["obstacles"] = len(found)
            c["dropped_above_horizon"] += found.above_horizon
            c["dropped_too_far"] += found.too_far
        self._report(DiagnosticStatus.OK, f"{len(found)} obstacles")
        return found

    def _update_grid(self, stamp, base: str, found: Obstacles, odom) -> OccupancyGrid:
        with self._lock:
            grid = self._grid
            if odom is None:
                frame = base
                grid.update((0.0, 0.0), found.points[:, :2], found.free_polygon, accumulate=False)
            else:
                x, y, yaw, frame = odom
                if frame != self._grid_frame:
                    grid.reset()
                poly = None if found.free_polygon is None else to_frame(found.free_polygon, x, y, yaw)
                grid.update((x, y), to_frame(found.points[:, :2], x, y, yaw), poly)
            self._grid_frame = frame
            occupancy = grid.occupancy()
            msg = OccupancyGrid()
            msg.header.stamp, msg.header.frame_id = stamp, frame
            msg.info.map_load_time = stamp
            msg.info.resolution = float(grid.config.resolution)
            msg.info.width = msg.info.height = grid.cells
            msg.info.origin.position.x, msg.info.origin.position.y = grid.origin
            msg.info.origin.orientation.w = 1.0
        msg.data = array.array("b", occupancy.tobytes())
        return msg

    def _skip(self, level: int, message: str) -> None:
        with self._lock:
            self._counts["skipped"] += 1
        self._report(level, message)

    def _report(self, level: int, message: str) -> None:
        with self._lock:
            self._state = {"level": level, "message": message}

    # -- messages ------------------------------------------------------------------------------------
    @staticmethod
    def cloud(stamp, frame: str, found: Obstacles) -> PointCloud2:
        """The ground contacts of every obstacle: x y z (base_frame) and the obstacle's mean score."""
        points = np.empty((len(found.points), 4), dtype="<f4")
        points[:, :3] = found.points
        points[:, 3] = found.score_mean[found.point_obstacle] if len(found.points) else 0.0
        msg = PointCloud2(height=1, width=len(points), fields=CLOUD_FIELDS, is_bigendian=False, point_step=16,
                          row_step=16 * len(points), is_dense=True)
        msg.header.stamp, msg.header.frame_id = stamp, frame
        msg.data = points.tobytes()
        return msg

    @staticmethod
    def markers(stamp, frame: str, found: Obstacles) -> MarkerArray:
        """One box and one range label per obstacle, after a DELETEALL that clears the previous frame's."""
        clear = Marker(action=Marker.DELETEALL)
        clear.header.stamp, clear.header.frame_id = stamp, frame
        out = [clear]
        for i in range(len(found)):
            x, y = float(found.x[i]), float(found.y[i])
            bearing = math.atan2(y, x)
            depth, width, height = (max(float(found.depth[i]), 0.2), max(float(found.width[i]), 0.1),
                                    max(float(found.height[i]), 0.1))
            box = Marker(ns="obstacles", id=i, type=Marker.CUBE, action=Marker.ADD)
            box.header = clear.header
            box.pose.position.x = x + math.cos(bearing) * depth / 2
            box.pose.position.y = y + math.sin(bearing) * depth / 2
            box.pose.position.z = height / 2
            box.pose.orientation.z, box.pose.orientation.w = math.sin(bearing / 2), math.cos(bearing / 2)
            box.scale.x, box.scale.y, box.scale.z = depth, width, height
            box.color.r, box.color.g, box.color.b, box.color.a = 1.0, 0.3, 0.1, 0.6
            label = Marker(ns="ranges", id=i, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
                           text=f"{float(found.range[i]):.1f} m")
            label.header = clear.header
            label.pose.position = Point(x=x, y=y, z=height + 0.5)
            label.pose.orientation.w = 1.0
            label.scale.z = 0.6
            label.color.r = label.color.g = label.color.b = label.color.a = 1.0
            out += [box, label]
        return MarkerArray(markers=out)

    # -- diagnostics ---------------------------------------------------------------------------------
    def diagnostics(self, node_name: str, hardware_id: str) -> List[DiagnosticStatus]:
        with self._lock:
            state, counts = dict(self._state), dict(self._counts)
            values = self._values
            camera = self._camera
        info: Dict[str, Any] = {**counts, "pose_source": self.pose_source, "base_frame": values["base_frame"],
                                "grid_frame": self._grid_frame or "-"}
        if camera is not None:
            info["camera"] = (f"{camera.width}x{camera.height} fx {camera.fx:.1f} fy {camera.fy:.1f} "
                              f"{camera.distortion_model or 'no distortion'}")
        status = DiagnosticStatus(level=state["level"], name=f"{node_name}: obstacles", message=state["message"],
                                  hardware_id=hardware_id)
        status.values = [KeyValue(key=k, value=str(v)) for k, v in info.items()]
        return [status]

