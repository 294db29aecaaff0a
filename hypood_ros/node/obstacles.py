"""Node glue for the obstacle outputs: camera_info, odometry and TF in; ood/obstacles, ood/grid, ood/markers out.

The geometry itself is `hypood_ros.geometry` (ROS-free). Here: matching a frame with its camera_info
(by stamp, within `camera_info_tolerance`) and odometry, the camera pose from TF or parameters, message
building, and a diagnostics status saying why nothing was published when something is missing. A
problem with one frame is reported and skipped; the mask outputs never depend on this module.

Many cameras: each has its own camera_info, pose (`<name>.camera_*` parameters, or TF from its frame_id),
obstacle cloud, markers and status (`CameraGeometry`); the grid and the odometry are shared, and one grid
update takes the obstacles of every camera of a batch (without odometry, of each camera's newest frame no
more than RECENT_S older than the batch's newest).
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
RECENT_S = 0.5  # without odometry, the grid holds each camera's newest obstacles no older than this
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


class CameraGeometry:
    """One camera's part of the obstacle outputs: its camera_info, camera model, pose, cloud, markers, status."""

    def __init__(self, node, camera: str, pose: Dict[str, float], qos: QoSProfile) -> None:
        self.camera = camera
        self.infos: deque = deque(maxlen=HISTORY)
        self.pose = pose_of(pose)
        self.state = {"level": DiagnosticStatus.OK, "message": "waiting for frames"}
        self.counts = {"frames": 0, "skipped": 0, "obstacles": 0, "dropped_above_horizon": 0, "dropped_too_far": 0}
        self.model: Optional[CameraModel] = None
        self._key: Optional[tuple] = None
        self._error = ""
        self.publishers = {name: publisher(node, kind, topics.camera_topic(camera, TOPICS[name]), qos)
                           for name, kind in (("obstacles", PointCloud2), ("markers", MarkerArray))}
        self.info_sub = subscription(node, CameraInfo, topics.camera_topic(camera, topics.CAMERA_INFO),
                                     self._on_info, qos_profile_sensor_data)
        self.lock: Optional[threading.Lock] = None  # the ObstacleOutputs' lock, set by it

    def _on_info(self, msg: CameraInfo) -> None:
        with self.lock:
            self.infos.append((stamp_ns(msg.header.stamp), msg))

    def camera_for(self, info: CameraInfo, rectified: bool) -> CameraModel:
        """The camera model of a camera_info; the model (or the reason it is refused) is kept while the
        message's contents stay the same."""
        key = (info.width, info.height, tuple(info.k), tuple(info.d), info.distortion_model, tuple(info.p),
               info.binning_x, info.binning_y, info.roi.width, info.roi.height, rectified)
        if key != self._key:
            self._key, self.model, self._error = key, None, ""
            try:
                roi = (info.roi.width, info.roi.height)
                if info.binning_x > 1 or info.binning_y > 1 or (all(roi) and roi != (info.width, info.height)):
                    raise CameraError("camera_info with binning or a region of interest is not supported")
                self.model = CameraModel.from_camera_info(info.width, info.height, list(info.k), list(info.d),
                                                          info.distortion_model, list(info.p), rectified)
            except CameraError as exc:
                self._error = str(exc)
        if self.model is None:
            raise CameraError(self._error)
        return self.model

    def no_info(self, values) -> str:
        return (f"no camera_info within {values['camera_info_tolerance']} s of the image stamp" if self.infos
                else "no camera_info received on " + self.info_sub.topic_name)

    def report(self, level: int, message: str, skipped: bool = False) -> None:
        with self.lock:
            self.counts["skipped"] += int(skipped)
            self.state = {"level": level, "message": message}

    def close(self, node) -> None:
        for pub in self.publishers.values():
            node.destroy_publisher(pub)
        node.destroy_subscription(self.info_sub)


def pose_of(values) -> CameraPose:
    """The camera pose from the camera_* parameter values (pose_source parameters)."""
    return CameraPose.from_parameters(values["camera_height"], values["camera_roll"], values["camera_pitch"],
                                      values["camera_yaw"], values["camera_x"], values["camera_y"])


class ObstacleOutputs:
    """Created by the node; `process_batch` is called by its worker thread after each batch's masks.

    `cameras`: camera name -> its pose parameter values (unprefixed names); None: the single camera of old
    ('', the node-wide camera_* parameters).
    """

    def __init__(self, node, values: Dict[str, Any], output_qos: Optional[QoSProfile] = None,
                 cameras: Optional[Dict[str, Dict[str, float]]] = None) -> None:
        self._node = node
        self._values = dict(values)
        self._lock = threading.Lock()
        self._odom: deque = deque(maxlen=HISTORY)
        self._grid = LocalGrid(self._grid_config(values))
        self._grid_frame = ""
        self._newest: Dict[str, tuple] = {}  # camera -> (header, Obstacles) of its newest frame with obstacles

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
        if cameras is None:
            cameras = {"": {name: values[name] for name in POSE_PARAMS}}
        self._cameras: Dict[str, CameraGeometry] = {}
        for name, pose in cameras.items():
            self._cameras[name] = CameraGeometry(node, name, pose, qos)
            self._cameras[name].lock = self._lock
        self._poses = {name: dict(pose) for name, pose in cameras.items()}
        self._grid_publisher = publisher(node, OccupancyGrid, TOPICS["grid"], qos)
        self._odom_sub = subscription(node, Odometry, topics.ODOM, self._on_odom, qos_profile_sensor_data)
        node.add_on_set_parameters_callback(self._on_set_parameters)

    # -- configuration -------------------------------------------------------------------------------
    @staticmethod
    def _grid_config(values) -> GridConfig:
        return GridConfig(**{name[len("grid_"):]: values[name] for name in GRID_PARAMS})

    def enabled(self) -> bool:
        return any(self._values[f"publish_{name}"] for name in GEOMETRY_OUTPUTS)

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Run-time changes of the dynamic parameters (the node's own callback refuses the static ones); a
        camera's own pose is `<camera>.camera_*`, the single camera's the node-wide camera_*."""
        values = dict(self._values)
        poses = {name: dict(pose) for name, pose in self._poses.items()}
        for param in params:
            spec = BY_NAME.get(param.name)
            if spec is not None and spec.dynamic:
                values[param.name] = param.value
                if "" in poses and param.name in POSE_PARAMS:
                    poses[""][param.name] = param.value
            camera, _, name = param.name.rpartition(".")
            if camera in poses and camera and name in POSE_PARAMS:
                poses[camera][name] = param.value
        try:
            pose_models = {name: pose_of(pose) for name, pose in poses.items()}
            grid = self._grid_config(values)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        with self._lock:
            self._values, self._poses = values, poses
            for name, pose in pose_models.items():
                self._cameras[name].pose = pose
            self._grid.reconfigure(grid)  # grid_size and grid_resolution are static
        return SetParametersResult(successful=True)

    # -- inputs --------------------------------------------------------------------------------------
    def _on_odom(self, msg: Odometry) -> None:
        pose = msg.pose.pose
        with self._lock:
            self._odom.append((stamp_ns(msg.header.stamp),
                               (pose.position.x, pose.position.y, yaw_of(pose.orientation), msg.header.frame_id)))

    def info_for(self, header, camera: str = "") -> Optional[CameraInfo]:
        """The camera_info of camera `camera` matched to a frame (nearest stamp within camera_info_tolerance),
        or None."""
        geometry = self._cameras[camera]
        with self._lock:
            return nearest(geometry.infos, stamp_ns(header.stamp), self._values["camera_info_tolerance"])

    def close(self) -> None:
        """Take the outputs, inputs and parameter callback of every camera off the node (a lifecycle node's
        deactivate)."""
        node = self._node
        node.remove_on_set_parameters_callback(self._on_set_parameters)
        for geometry in self._cameras.values():
            geometry.close(node)
        node.destroy_publisher(self._grid_publisher)
        node.destroy_subscription(self._odom_sub)
        listener = getattr(self, "_tf_listener", None)
        if listener is not None and hasattr(listener, "unregister"):
            listener.unregister()

    def _camera_pose(self, geometry: CameraGeometry, header, base_frame: str) -> CameraPose:
        if self._tf_buffer is None:
            return geometry.pose
        return pose_from_transform(
            self._tf_buffer.lookup_transform(base_frame, header.frame_id, Time.from_msg(header.stamp), TF_TIMEOUT))

    # -- per frame -----------------------------------------------------------------------------------
    def corridor(self, header, shape, camera: str = "") -> Tuple[Optional[np.ndarray], str]:
        """The corridor ahead (roi corridor / road_corridor) as a bool mask of the frame's size from the
        camera_info and pose of this frame, or (None, the reason there is none); never raises."""
        geometry = self._cameras[camera]
        try:
            with self._lock:
                values = self._values
                info = nearest(geometry.infos, stamp_ns(header.stamp), values["camera_info_tolerance"])
            if info is None:
                return None, geometry.no_info(values)
            model = geometry.camera_for(info, values["image_rectified"])
            model.check_size(*shape)
            pose = self._camera_pose(geometry, header, values["base_frame"])
            return corridor_mask(model, pose, values["corridor_half_width"], values["max_range"],
                                 values["corridor_height"], values["corridor_min_range"]), ""
        except HypoodError as exc:
            return None, str(exc)
        except Exception as exc:  # TF lookups raise their own exception types
            return None, f"{type(exc).__name__}: {exc}"

    def process(self, header, mask: Optional[np.ndarray], score: Optional[np.ndarray],
                camera: str = "") -> Optional[Obstacles]:
        """One frame (see process_batch)."""
        return self.process_batch([(camera, header, mask, score)])[0]

    def process_batch(self, frames) -> List[Optional[Obstacles]]:
        """`frames`: (camera, header, mask, score) of one batch. Each camera's cloud and markers, then one grid
        update from all of them. Never raises: whatever is missing is reported in that camera's diagnostics
        and its frame is skipped here."""
        if not self.enabled():
            for geometry in self._cameras.values():
                geometry.report(DiagnosticStatus.OK, "obstacle outputs off")
            return [None] * len(frames)
        found = []
        for camera, header, mask, score in frames:
            geometry = self._cameras[camera]
            try:
                found.append(self._find(geometry, header, mask, score))
                continue
            except HypoodError as exc:
                geometry.report(DiagnosticStatus.ERROR, str(exc), skipped=True)
            except Exception as exc:  # TF lookups raise their own exception types; nothing may stop the worker
                geometry.report(DiagnosticStatus.WARN, f"{type(exc).__name__}: {exc}", skipped=True)
            found.append(None)
        seen = [(header, f) for (_, header, _, _), f in zip(frames, found) if f is not None]
        self._newest.update({camera: (header, f) for (camera, header, _, _), f in zip(frames, found)
                             if f is not None})
        if seen and self._values["publish_grid"]:
            try:
                self._grid_publisher.publish(self._update_grid(seen))
            except Exception as exc:  # never fatal; reported on the cameras of the batch
                for camera, *_ in frames:
                    self._cameras[camera].report(DiagnosticStatus.WARN, f"grid: {type(exc).__name__}: {exc}")
        return found

    def _find(self, geometry: CameraGeometry, header, mask, score) -> Optional[Obstacles]:
        with self._lock:
            values = self._values
            info = nearest(geometry.infos, stamp_ns(header.stamp), values["camera_info_tolerance"])
        if mask is None:
            raise ConfigError("no mask for this frame")
        if info is None:
            geometry.report(DiagnosticStatus.WARN, geometry.no_info(values), skipped=True)
            return None
        model = geometry.camera_for(info, values["image_rectified"])
        model.check_size(*mask.shape)
        base = values["base_frame"]
        pose = self._camera_pose(geometry, header, base)
        found = find_obstacles(mask, model, pose, values["max_range"], score, free_space=values["publish_grid"])
        if values["publish_obstacles"]:
            geometry.publishers["obstacles"].publish(self.cloud(header.stamp, base, found))
        if values["publish_markers"]:
            geometry.publishers["markers"].publish(self.markers(header.stamp, base, found))
        with self._lock:
            c = geometry.counts
            c["frames"] += 1
            c["obstacles"] = len(found)
            c["dropped_above_horizon"] += found.above_horizon
            c["dropped_too_far"] += found.too_far
        geometry.report(DiagnosticStatus.OK, f"{len(found)} obstacles")
        return found

    def _update_grid(self, seen) -> OccupancyGrid:
        """One grid update from every camera's obstacles of a batch ((header, Obstacles) pairs): in the odometry
        frame when every frame has odometry, else rebuilt in base_frame from each camera's newest obstacles."""
        base = self._values["base_frame"]
        stamp = max((header.stamp for header, _ in seen), key=stamp_ns)
        with self._lock:
            odoms = [nearest(self._odom, stamp_ns(header.stamp), self._values["odom_tolerance"]) for header, _ in seen]
            grid = self._grid
            if any(odom is None for odom in odoms):
                frame = base
                newest = stamp_ns(stamp)
                seen = [(h, f) for h, f in self._newest.values() if newest - stamp_ns(h.stamp) <= RECENT_S * 1e9]
                hits = np.concatenate([found.points[:, :2] for _, found in seen])
                grid.update((0.0, 0.0), hits, [found.free_polygon for _, found in seen], accumulate=False)
            else:
                frame = odoms[-1][3]
                if frame != self._grid_frame:
                    grid.reset()
                hits = np.concatenate([to_frame(found.points[:, :2], *odom[:3])
                                       for (_, found), odom in zip(seen, odoms)])
                polygons = [None if found.free_polygon is None else to_frame(found.free_polygon, *odom[:3])
                            for (_, found), odom in zip(seen, odoms)]
                newest = max(range(len(seen)), key=lambda i: stamp_ns(seen[i][0].stamp))
                grid.update(odoms[newest][:2], hits, polygons)
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
        """One status per camera: `<node>: obstacles`, or `<node>: obstacles (<camera>)` for a named camera."""
        out = []
        for name, geometry in self._cameras.items():
            with self._lock:
                state, counts = dict(geometry.state), dict(geometry.counts)
                values = self._values
                camera = geometry.model
            info: Dict[str, Any] = {**counts, "pose_source": self.pose_source, "base_frame": values["base_frame"],
                                    "grid_frame": self._grid_frame or "-"}
            if camera is not None:
                info["camera"] = (f"{camera.width}x{camera.height} fx {camera.fx:.1f} fy {camera.fy:.1f} "
                                  f"{camera.distortion_model or 'no distortion'}")
            status = DiagnosticStatus(level=state["level"], message=state["message"], hardware_id=hardware_id,
                                      name=f"{node_name}: obstacles" + (f" ({name})" if name else ""))
            status.values = [KeyValue(key=k, value=str(v)) for k, v in info.items()]
            out.append(status)
        return out
