"""Generated scenes written where the rest of the project reads data.

- `write_cityscapes`: leftImg8bit/ + gtFine/ (`*_gtFine_labelTrainIds.png`) for `hypood train`.
- `write_smiyc`: dataset_AnomalyTrack/images + labels_masks (0 = in-distribution, 1 = OOD,
  255 = void: the ego vehicle) for `hypood eval --dataset smiyc-anomaly`.
- `write_bag`: a rosbag2 MCAP bag of sensor_msgs/Image (rgb8) and sensor_msgs/CameraInfo with stamps at
  the drive's frame rate, for `hypood replay`; optionally the OOD ground truth beside them (`labels`), for
  `hypood fleet`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from hypood_ros.synthetic.canvas import VOID
from hypood_ros.synthetic.scene import ROAD, Anomaly, Camera, View, make_street, render_view
from hypood_ros.topics import camera_info_for, label_topic_for

CITY = "synth"
STAMP0 = 1_767_225_600  # 2026-01-01T00:00:00Z: a fixed start, so bags from one seed are identical


@dataclass
class Frame:
    index: int
    stamp_ns: int
    rgb: np.ndarray  # uint8 [H,W,3]
    label: np.ndarray  # train ids, 255 = void (ego vehicle, anomaly)
    ood: np.ndarray  # bool anomaly mask
    intrinsics: Tuple[float, float, float] = (0.0, 0.0, 0.0)  # focal length, principal point x, y (pixels)
    #: uint16 [H,W]: the id of the anomaly each OOD pixel shows, 0 elsewhere (non-zero exactly where `ood`)
    instances: Optional[np.ndarray] = None
    #: the anomalies in view (at least one visible pixel), with their ground truth (`scene.Anomaly`)
    anomalies: Tuple[Anomaly, ...] = ()
    camera_height: float = 0.0  # metres above the road (pitch 0, roll 0: the camera looks along the road)
    horizon: float = 0.0  # the horizon's row as a fraction of the image height (the principal point's row)

    @property
    def ood_label(self) -> np.ndarray:
        """The benchmark label: 0 in-distribution, 1 OOD, 255 void (ego vehicle)."""
        out = np.zeros(self.label.shape, np.uint8)
        out[self.label == VOID] = 255
        out[self.ood] = 1
        return out

    @property
    def road_label(self) -> np.ndarray:
        """The obstacle-track label: 0 road, 1 OOD, 255 everything else."""
        out = np.full(self.label.shape, 255, np.uint8)
        out[self.label == ROAD] = 0
        out[self.ood] = 1
        return out


def drive(seed: int, frames: int, fps: float = 10.0, speed: float = 8.0, family: Optional[str] = "evaluation",
          anomalies: int = 3, size: Sequence[int] = (240, 480)) -> Iterator[Frame]:
    """Consecutive frames of a car driving down one street at `speed` m/s; with `family`, `anomalies`
    objects of it lie on the road ahead, reached along the drive."""
    travel = frames * speed / fps
    street = make_street(seed, length=travel + 60, anomalies=family, anomaly_count=anomalies if family else 0,
                         anomaly_range=(12.0, travel + 20.0))
    for i in range(frames):
        t = i / fps
        view = render_view(street, speed * t, size[0], size[1], t=t)
        yield _frame(i, STAMP0 * 10**9 + int(round(t * 1e9)), view, street, size)


def scene(seed: int, size: Sequence[int] = (240, 480), family: Optional[str] = None, anomalies: int = 0) -> Frame:
    """One picture of street `seed` from a position and time fixed by the seed (for datasets)."""
    rng = np.random.default_rng([seed, 1])
    z, t = float(rng.uniform(0, 150)), float(rng.uniform(0, 20))
    street = make_street(seed, length=200, anomalies=family, anomaly_count=anomalies,
                         anomaly_range=(z + 7.0, z + 35.0))
    return _frame(0, STAMP0 * 10**9, render_view(street, z, size[0], size[1], t=t), street, size)


def _frame(index: int, stamp_ns: int, view: View, street, size: Sequence[int]) -> Frame:
    return Frame(index, stamp_ns, view.rgb, view.label, view.ood, intrinsics(street, size), view.instances,
                 tuple(a for a in view.anomalies if a.pixels > 0), street.camera_h, street.horizon)


def intrinsics(street, size: Sequence[int]) -> Tuple[float, float, float]:
    cam = Camera(street, 0.0, size[0], size[1])
    return cam.f, cam.cx, cam.cy


def _png(path: Path, image: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    data = image[:, :, ::-1] if image.ndim == 3 else image
    if not cv2.imwrite(str(path), np.ascontiguousarray(data)):
        raise OSError(f"cannot write {path}")


def write_cityscapes(root, split: str, seeds: Iterable[int], size: Sequence[int] = (240, 480), progress=None) -> int:
    """Anomaly-free scenes in the Cityscapes layout (train ids, 255 on the ego vehicle)."""
    root, count = Path(root), 0
    for seed in seeds:
        f = scene(seed, size)
        stem = f"{CITY}_{seed:06d}_000000"
        _png(root / "leftImg8bit" / split / CITY / f"{stem}_leftImg8bit.png", f.rgb)
        _png(root / "gtFine" / split / CITY / f"{stem}_gtFine_labelTrainIds.png", f.label)
        count += 1
        if progress is not None:
            progress.update(1)
    return count


def write_smiyc(root, frames: Iterable[Frame], prefix: str = "synth", track: str = "AnomalyTrack") -> List[str]:
    """Frames in an SMIYC layout; only frames with OOD pixels are written (as the benchmark).

    AnomalyTrack: the whole picture is scored (void: the ego vehicle). ObstacleTrack: only the road and the
    obstacles on it are scored, everything else is void (`hypood eval --dataset smiyc-obstacle`).
    """
    if track not in ("AnomalyTrack", "ObstacleTrack"):
        raise ValueError(f"track must be AnomalyTrack or ObstacleTrack, got {track!r}")
    base = Path(root) / f"dataset_{track}"
    names = []
    for f in frames:
        if not f.ood.any():
            continue
        name = f"validation_{prefix}{f.index:04d}"  # the benchmark's validation split takes validation_* names
        label = f.ood_label if track == "AnomalyTrack" else f.road_label
        _png(base / "images" / f"{name}.png", f.rgb)
        _png(base / "labels_masks" / f"{name}_labels_semantic.png", label)
        names.append(name)
    return names


def write_bag(path, frames: Iterable[Frame], topic: str = "/front/image_raw", frame_id: str = "front_camera",
              progress=None, labels: bool = False) -> int:
    """An MCAP rosbag2 bag with `topic` (Image, rgb8) and `<namespace>/camera_info` (CameraInfo); it appears
    under `path` only once complete (`BagRecorder`), so a failed run leaves no half bag. With `labels`, each
    frame's `Frame.ood_label` (mono8: 0 in-distribution, 1 OOD, 255 void) goes to `<namespace>/ood_label`
    with the frame's header: the ground truth `hypood fleet` measures a model against."""
    from hypood_ros.bags import BagRecorder, typestore

    ts = typestore()
    Image, Info = ts.types["sensor_msgs/msg/Image"], ts.types["sensor_msgs/msg/CameraInfo"]
    Header, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    Roi = ts.types["sensor_msgs/msg/RegionOfInterest"]
    info_topic, label_topic = camera_info_for(topic), label_topic_for(topic)
    recorder = BagRecorder(path, "mcap")
    count, ok = 0, False
    try:
        for f in frames:
            h, w = f.rgb.shape[:2]
            header = Header(stamp=Time(sec=f.stamp_ns // 10**9, nanosec=f.stamp_ns % 10**9), frame_id=frame_id)
            img = Image(header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                        data=np.ascontiguousarray(f.rgb).reshape(-1))
            fx, cx, cy = f.intrinsics
            info = Info(header=header, height=h, width=w, distortion_model="plumb_bob", d=np.zeros(5),
                        k=np.array([fx, 0, cx, 0, fx, cy, 0, 0, 1], np.float64), r=np.eye(3).reshape(-1),
                        p=np.array([fx, 0, cx, 0, 0, fx, cy, 0, 0, 0, 1, 0], np.float64), binning_x=0, binning_y=0,
                        roi=Roi(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
            receive = f.stamp_ns + 2_000_000  # recorded 2 ms after capture
            recorder.write(topic, "sensor_msgs/msg/Image", receive, ts.serialize_cdr(img, "sensor_msgs/msg/Image"))
            recorder.write(info_topic, "sensor_msgs/msg/CameraInfo", receive,
                           ts.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
            if labels:
                label = Image(header=header, height=h, width=w, encoding="mono8", is_bigendian=0, step=w,
                              data=np.ascontiguousarray(f.ood_label).reshape(-1))
                recorder.write(label_topic, "sensor_msgs/msg/Image", receive,
                               ts.serialize_cdr(label, "sensor_msgs/msg/Image"))
            count += 1
            if progress is not None:
                progress.update(1)
        ok = True
    finally:
        recorder.close(success=ok)
    return count
