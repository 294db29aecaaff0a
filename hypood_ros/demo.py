"""The embedded demo (`make demo`, `hypood demo`): a generated drive through the real node, and what it saw.

1. generate a drive with evaluation-family anomalies (never used in training) -> MCAP bag + SMIYC layout;
2. start `hypood_node` in its own process with the shipped demo model and the generated camera's pose,
   replay the bag's frames and camera_info to it over DDS and record its outputs, the obstacles it reports
   on the road included (ood/obstacles, ood/grid, ood/markers; `hypood_ros.replay.replayer`);
3. from the recorded outputs: contact sheet, animated overlay, mIoU of the node's semantic map and the
   metrics of the score the node published; the node's mask against the generated obstacles (SMIYC
   component metrics, each obstacle found or missed by its true range, pixel recall and false alarms inside
   the node's region) and its reported obstacles against them (range errors, false obstacles:
   `hypood_ros.evaluation.obstacles`); every score of the registry on the anomaly frames through the
   project's evaluator (the numbers `hypood eval --dataset smiyc-anomaly` gives on `anomaly_frames/`), PR
   and ROC curves; all of it in `summary.json` and a printed table.

Generated scenes and a small model: a demonstration of the pipeline, not a claim about real-world accuracy.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from hypood_ros import topics
from hypood_ros.defaults import default
from hypood_ros.errors import ConfigError, HypoodError

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "models" / "demo"
TOPIC = "/front/image_raw"
T = topics.IMAGE_OUTPUTS  # the node's image outputs by name
#: Outputs of the demo folder that a new run replaces.
PRODUCTS = ("drive", "outputs", "anomaly_frames", "eval", "contact_sheet.png", "overlay.gif", "summary.json",
            "ego_mask.png")
#: Evaluator layouts of the anomaly frames: the whole picture, and the road only.
TRACKS = ("smiyc-anomaly", "smiyc-obstacle")
#: The node's vehicle frame in the demo: its origin is the point on the road below the camera.
BASE_FRAME = "base_link"
#: Parameters of the node's obstacle mask read from the params file (the node's defaults where it has none).
MASK_PARAMS = ("score", "threshold", "roi", "roi_margin", "roi_drop_known", "opening", "min_area")
#: Colours (RGB) of the contact sheet's obstacle column: reported obstacles, generated obstacles missed.
REPORTED_COLOR, MISSED_COLOR = (255, 140, 0), (0, 220, 255)
#: The comparisons the thesis and the UEM paper make, reported side by side.
COMPARISONS = {
    "energy_family": ["energy", "normalized_energy", "weighted_normalized_energy"],
    "llr": ["uem_llr", "hyperspherical_llr"],
}


@dataclass
class DemoSettings:
    out: Path = Path("demo_out")
    model: Path = MODEL_DIR / "model.pt"
    params: Optional[Path] = MODEL_DIR / "params.yaml"
    seed: int = 500_000  # a street no training scene used (training seeds are 0-1099)
    frames: int = 60
    fps: float = 10.0
    speed: float = 8.0
    anomalies: int = 3
    size: Sequence[int] = (240, 480)
    #: network input; None: input_height/input_width of the params file (the size its threshold was
    #: calibrated at), else the frame size rounded down to multiples of 14
    input_size: Optional[Sequence[int]] = None
    rate: Optional[float] = None  # None: each frame once the node answered the previous one
    sheet_rows: int = 4
    progress: bool = True


def say(text: str) -> None:
    """A line on stderr that does not break a running progress bar (the node's warnings come mid-replay)."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


def _bar(total: int, desc: str, enabled: bool):
    """A progress bar on stderr, gone when done; drawn only on a terminal, as the command line's bars
    (`hypood_ros.cli.console.progress`, which this module, below the command line, does not import)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, disable=not (enabled and sys.stderr.isatty()),
                dynamic_ncols=True, leave=False)


def message_array(msg) -> np.ndarray:
    """A recorded sensor_msgs/Image (rgb8, mono8 or 32FC1) as a numpy array."""
    from hypood_ros.conversion import image_to_rgb

    if msg.encoding == "rgb8":
        return image_to_rgb(msg.height, msg.width, msg.encoding, msg.step, msg.data, msg.is_bigendian)
    dtype = {"mono8": np.dtype(np.uint8), "32FC1": np.dtype(np.float32)}.get(msg.encoding)
    if dtype is None:
        raise HypoodError(f"unexpected output encoding {msg.encoding!r}")
    dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, : msg.width * dtype.itemsize].copy().view(dtype).reshape(msg.height, msg.width)
    return pixels.astype(dtype.newbyteorder("="))


def recorded_outputs(bag: Path) -> Dict[str, Dict[int, np.ndarray]]:
    """{output name: {stamp ns: array}} from the recorded bag."""
    from hypood_ros.bags import read_frames
    from hypood_ros.replay.replayer import OUTPUT_TOPICS

    out = {}
    for name in OUTPUT_TOPICS:
        out[name] = {}
        for frame in read_frames(bag, "/" + name):
            stamp = frame.msg.header.stamp
            out[name][stamp.sec * 10**9 + stamp.nanosec] = message_array(frame.msg)
    return out


@dataclass(frozen=True)
class Reported:
    """An obstacle the node reported on ood/markers: its range label and its box (base_frame, metres)."""
    range: float
    x: float  # the label's position: the centroid of the obstacle's ground contacts
    y: float
    box: Tuple[float, ...] = ()  # centre x, y, z, yaw, depth, width, height; () without a box marker


def marker_range(text: str) -> float:
    """The range a marker label shows ("12.3 m")."""
    number, _, unit = text.strip().partition(" ")
    try:
        if unit.strip() == "m":
            return float(number)
    except ValueError:
        pass
    raise HypoodError(f"unexpected obstacle range label {text!r} (expected e.g. '12.3 m')")


def recorded_obstacles(bag: Path) -> Dict[int, List[Reported]]:
    """{stamp ns: obstacles} from the recorded ood/markers (the node's box and range label per obstacle, after
    a DELETEALL that carries the frame's stamp); frames the node published no markers for are absent."""
    import math

    from hypood_ros.bags import read_messages

    out: Dict[int, List[Reported]] = {}
    for message in read_messages(bag, "/" + topics.OBSTACLE_OUTPUTS["markers"]):
        markers = message.msg.markers
        if not markers:
            continue
        stamp = markers[0].header.stamp
        boxes = {m.id: m for m in markers if m.ns == "obstacles"}
        found = []
        for label in (m for m in markers if m.ns == "ranges"):
            box = boxes.get(label.id)
            shape: Tuple[float, ...] = ()
            if box is not None:
                q, p = box.pose.orientation, box.pose.position
                yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
                shape = (p.x, p.y, p.z, yaw, box.scale.x, box.scale.y, box.scale.z)
            found.append(Reported(marker_range(label.text), label.pose.position.x, label.pose.position.y, shape))
        out[stamp.sec * 10**9 + stamp.nanosec] = found
    return out


def project(camera, pose, points) -> np.ndarray:
    """[N,3] base_frame points -> [N,2] pixels through the generated camera; NaN for points not in front of it."""
    optical = pose.to_optical(points)
    uv = np.full((len(optical), 2), np.nan)
    ahead = optical[:, 2] > 1e-3
    if ahead.any():
        uv[ahead] = camera.project(optical[ahead])
    return uv


def box_corners(box: Tuple[float, ...]) -> np.ndarray:
    """The 8 corners ([8,3], base_frame) of a reported obstacle's box."""
    x, y, z, yaw, depth, width, height = box
    c, s_ = np.cos(yaw), np.sin(yaw)
    local = np.array([[dx, dy, dz] for dx in (-depth / 2, depth / 2) for dy in (-width / 2, width / 2)
                      for dz in (-height / 2, height / 2)])
    return np.stack([x + c * local[:, 0] - s_ * local[:, 1], y + s_ * local[:, 0] + c * local[:, 1],
                     z + local[:, 2]], 1)


def node_params(path: Optional[Path]) -> Dict[str, object]:
    """The parameters the node gets from a params YAML (score, threshold, eta, lam, ...), by ROS's section
    rules for the node's name; {} without a file."""
    from hypood_ros.node.params_files import node_values

    return {} if path is None else node_values(path)


def contact_sheet(rows: List[Dict[str, np.ndarray]], path: Path) -> np.ndarray:
    """camera | semantic map | OOD score heat map | mask overlay | obstacles, one row per frame, titled."""
    import cv2

    from hypood_ros.images import write_image

    titles = ["camera", "semantic map", "OOD score (min-max)", "OOD mask overlay"]
    h, w = rows[0]["camera"].shape[:2]
    head = np.full((22, w * 5, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, title in enumerate(titles):
        cv2.putText(head, title, (i * w + 6, 16), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    x = 4 * w + 6
    for color, text in ((REPORTED_COLOR, "reported: range"), (MISSED_COLOR, "missed: true range")):
        cv2.rectangle(head, (x, 6), (x + 10, 16), color, -1)
        cv2.putText(head, text, (x + 14, 16), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        x += 14 + cv2.getTextSize(text, font, 0.5, 1)[0][0] + 16
    lines = [head]
    for row in rows:
        tiles = [row["camera"], row["color"], row["heat"], row["overlay"], row["obstacles"]]
        strip = np.concatenate(tiles, 1).copy()
        cv2.putText(strip, f"frame {row['index']}", (6, h - 8), font, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        lines.append(strip)
    sheet = np.concatenate(lines, 0)
    write_image(path, sheet)
    return sheet


def _tags(image: np.ndarray, tags: List[Tuple[str, Tuple[int, int, int, int], Tuple[int, int, int]]]) -> None:
    """Each (text, rectangle, colour) on a dark plate above its rectangle, else below it, else stacked further
    up or down, with a line to the rectangle: the first place inside the picture that no earlier plate covers
    (earlier tags win)."""
    import cv2

    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    h, w = image.shape[:2]
    taken: List[Tuple[int, int, int, int]] = []
    for text, (x0, y0, x1, y1), color in tags:
        (tw, th), base = cv2.getTextSize(text, font, scale, 1)
        pw, ph = tw + 2, th + base + 2
        x = int(np.clip(x0, 0, max(w - pw, 0)))
        tops = [y0 - 1 - ph, y1 + 1]
        tops += [top for k in range(1, 8) for top in (y0 - 1 - ph - k * (ph + 1), y1 + 1 + k * (ph + 1))]
        inside = [top for top in tops if 0 <= top <= h - ph]
        free = [top for top in inside
                if not any(x < bx1 and bx0 < x + pw and top < by1 and by0 < top + ph for bx0, by0, bx1, by1 in taken)]
        top = (free or inside or [int(np.clip(tops[0], 0, max(h - ph, 0)))])[0]
        taken.append((x, top, x + pw, top + ph))
        if top not in tops[:2]:  # stacked away from its rectangle
            below = top > y1
            anchor = int(np.clip(x + pw // 2, x0, x1))
            cv2.line(image, (x + pw // 2, top if below else top + ph - 1), (anchor, y1 if below else y0), color, 1)
        cv2.rectangle(image, (x, top), (x + pw - 1, top + ph - 1), (0, 0, 0), -1)
        cv2.putText(image, text, (x + 1, top + th + 1), font, scale, color, 1, cv2.LINE_AA)


def obstacle_picture(rgb: np.ndarray, camera, pose, reported: List[Reported],
                     missed: List[Tuple[Tuple[int, int, int, int], float]]) -> np.ndarray:
    """The camera picture with a box around each obstacle the node reported (its box marker projected through
    the generated camera) labelled with the reported range, and each generated obstacle the mask missed
    (`missed`: its pixels' bounding box and true range) outlined in another colour with its true range."""
    import cv2

    image = np.ascontiguousarray(rgb).copy()
    h, w = image.shape[:2]
    tags = []
    for obstacle in reported:
        corners = box_corners(obstacle.box) if obstacle.box else np.array([[obstacle.x, obstacle.y, 0.0]])
        uv = project(camera, pose, corners)
        uv = uv[np.isfinite(uv).all(1)]
        if not len(uv):
            continue
        x0, y0 = np.floor(uv.min(0)).astype(int)
        x1, y1 = np.ceil(uv.max(0)).astype(int)
        x0, x1 = int(np.clip(x0, 0, w - 1)), int(np.clip(max(x1, x0 + 2), 0, w - 1))
        y0, y1 = int(np.clip(y0, 0, h - 1)), int(np.clip(max(y1, y0 + 2), 0, h - 1))
        tags.append((f"{obstacle.range:.1f} m", (x0, y0, x1, y1), REPORTED_COLOR))
    tags += [(f"{true_range:.1f} m", rect, MISSED_COLOR) for rect, true_range in missed]
    for _, rect, color in tags:
        cv2.rectangle(image, rect[:2], rect[2:], color, 1)
    _tags(image, tags)
    return image


def write_gif(frames: List[np.ndarray], path: Path, fps: float) -> None:
    from PIL import Image as PILImage

    images = [PILImage.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0,
                   optimize=False)


def _pick_rows(anomaly_frames: List[int], all_frames: int, count: int) -> List[int]:
    pool = anomaly_frames or list(range(all_frames))
    picks = np.linspace(0, len(pool) - 1, min(count, len(pool))).round().astype(int)
    return [pool[i] for i in picks]


def remove_products(out: Path) -> None:
    """An earlier run's products (and half-written ones) in `out`; anything else there is left alone."""
    for name in PRODUCTS + tuple(n + ".partial" for n in PRODUCTS):
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists() or target.is_symlink():
            target.unlink(missing_ok=True)


class ObstacleMeasure:
    """The node's mask and its reported obstacles against the generated obstacles, on the frames with any:
    SMIYC component metrics of both tracks, each obstacle found or missed with its true range, range errors
    and false obstacles (`hypood_ros.evaluation.obstacles`), pixel recall and false alarms inside the node's
    region of interest (recomputed from its recorded labels with the params file's roi settings)."""

    def __init__(self, first, params: Dict[str, object], reports: Dict[int, List[Reported]],
                 ego: Optional[np.ndarray] = None) -> None:
        from hypood_ros.evaluation.components import ComponentTally
        from hypood_ros.evaluation.obstacles import ObstacleTally
        from hypood_ros.geometry import CameraModel, CameraPose

        fx, cx, cy = first.intrinsics
        height, width = first.rgb.shape[:2]
        self.camera = CameraModel(width, height, fx, fx, cx, cy)  # the bag's camera_info
        self.pose = CameraPose.from_parameters(first.camera_height)  # what the node is given
        self.settings = {name: params.get(name, default(name)) for name in MASK_PARAMS}
        self.params = params
        self.ego = ego  # the bonnet, as the node was given it
        self.reports = reports
        self.tracks = {track: ComponentTally() for track in TRACKS}
        self.tally = ObstacleTally()
        self.region = np.zeros(4, np.int64)  # OOD flagged, OOD, in-distribution flagged, in-distribution
        self.without_markers = 0

    def _region(self, labels: np.ndarray) -> Optional[np.ndarray]:
        from hypood_ros.geometry import corridor_mask
        from hypood_ros.roi import GEOMETRY_MODES, region_of_interest

        mode = self.settings["roi"]
        corridor = None
        if mode in GEOMETRY_MODES:
            p = {n: self.params.get(n, default(n)) for n in ("corridor_half_width", "corridor_height",
                                                               "corridor_min_range", "max_range")}
            corridor = corridor_mask(self.camera, self.pose, p["corridor_half_width"], p["max_range"],
                                     p["corridor_height"], p["corridor_min_range"])
        return region_of_interest(mode, labels, corridor, int(self.settings["roi_margin"]),
                                  bool(self.settings["roi_drop_known"]), self.ego)

    def add(self, f, stamp: int, mask: np.ndarray, labels: np.ndarray):
        """One frame with generated obstacles; returns the missed ones' (bounding box, true range)."""
        from hypood_ros.evaluation.components import TRACK_SIZES, instances, segment_metrics
        from hypood_ros.evaluation.obstacles import KnownObstacle, Report, match_reports, obstacle_sious

        for track, label in (("smiyc-anomaly", f.ood_label), ("smiyc-obstacle", f.road_label)):
            self.tracks[track].add(segment_metrics(*instances(mask, label, *TRACK_SIZES[track])))
        gt = f.ood_label
        region = self._region(labels)
        inside = np.ones(gt.shape, bool) if region is None else region
        self.region += [int((mask & inside & (gt == 1)).sum()), int((inside & (gt == 1)).sum()),
                        int((mask & inside & (gt == 0)).sum()), int((inside & (gt == 0)).sum())]
        if stamp not in self.reports:
            self.without_markers += 1  # a frame whose ood/markers did not arrive: no obstacle bookkeeping
            return []
        sious = obstacle_sious(mask, f.road_label, f.instances, TRACK_SIZES["smiyc-obstacle"])
        truth = {a.id: a for a in f.anomalies if a.id in sious}
        reported = self.reports[stamp]
        uv = project(self.camera, self.pose, np.array([[r.x, r.y, 0.0] for r in reported]).reshape(-1, 3))
        record = self.tally.add(f.index, [KnownObstacle(a.id, a.range, a.contact_visible) for a in truth.values()],
                                sious, [Report(r.range, *p) for r, p in zip(reported, uv)],
                                match_reports(uv, f.instances))
        missed = []
        for row in record["obstacles"]:
            a = truth[row["id"]]
            row.update(shape=a.shape, dx=a.dx, dz=a.dz, pixels=a.pixels)
            if not row["found"]:
                ys, xs = np.nonzero(f.instances == a.id)
                missed.append(((int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())), a.range))
        return missed

    def summary(self) -> dict:
        flagged_ood, ood, flagged_id, id_ = self.region.tolist()
        counts = self.tally.summary()
        return {
            "source": "recorded ood/mask and ood/markers on the frames with generated obstacles, the node given "
                      "the bag's camera_info and the generated camera's pose",
            "components": {track: self.tracks[track].summary() for track in TRACKS},
            "region": {"roi": self.settings["roi"], "roi_margin": self.settings["roi_margin"],
                       "mask_recall": flagged_ood / ood if ood else None,
                       "mask_false_positive_rate": flagged_id / id_ if id_ else None,
                       "anomaly_pixels_inside": ood, "other_pixels_inside": id_,
                       "source": "the region recomputed from the recorded semantic/labels (hypood_ros.roi)"},
            "frames_without_markers": self.without_markers,
            **counts,
            "per_frame": self.tally.frames,
        }


def run_demo(s: DemoSettings) -> dict:
    from hypood_ros.bags import RecorderThread
    from hypood_ros.dds import AUTO, profile_env, resolve_profile, use_profile
    from hypood_ros.evaluation.datasets import open_dataset
    from hypood_ros.evaluation.evaluate import evaluate, select_scores
    from hypood_ros.evaluation.metrics import PixelSample
    from hypood_ros.evaluation.segmentation import confusion, miou
    from hypood_ros.replay.replayer import NodeLauncher, Replayer, node_arguments
    from hypood_ros.runtimes import load_backend
    from hypood_ros.synthetic import writers
    from hypood_ros.visualize import heat_map

    started = time.monotonic()
    stages: Dict[str, float] = {}

    def lap(name: str) -> None:
        stages[name] = round(time.monotonic() - started - sum(stages.values()), 2)
    if Path(s.model).is_dir():
        raise ConfigError(f"model {s.model} is a folder; it must be a checkpoint file, such as "
                          f"{Path(s.model) / 'model.pt'} (the shipped one is {MODEL_DIR / 'model.pt'})")
    if not Path(s.model).is_file():
        raise ConfigError(f"model not found: {s.model} (the shipped one is {MODEL_DIR / 'model.pt'})")
    params = node_params(s.params)
    if s.input_size is None:
        s = dataclasses.replace(s, input_size=(int(params.get("input_height", s.size[0] // 14 * 14)),
                                               int(params.get("input_width", s.size[1] // 14 * 14))))
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    remove_products(out)

    say(f"[1/4] generating a {s.frames}-frame drive (street {s.seed}, {s.size[1]}x{s.size[0]}, {s.fps:g} Hz) with "
        f"{s.anomalies} evaluation-family anomalies on the road")
    with _bar(s.frames, "generate", s.progress) as bar:
        frames = []
        for f in writers.drive(s.seed, s.frames, s.fps, s.speed, "evaluation", s.anomalies, s.size):
            frames.append(f)
            bar.update(1)
    writers.write_bag(out / "drive", frames, TOPIC, labels=True)  # the ground truth too, for `hypood fleet`
    anomaly_names = writers.write_smiyc(out / "anomaly_frames", frames)
    writers.write_smiyc(out / "anomaly_frames", frames, track="ObstacleTrack")
    anomaly_idx = [f.index for f in frames if f.ood.any()]
    if not anomaly_idx:
        raise HypoodError("the generated drive has no anomaly in view; use more frames")

    lap("generate")
    say(f"[2/4] starting hypood_node ({Path(s.model).name}) in its own process and replaying the bag over DDS")
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid() ^ time.time_ns()).randint(10, 200)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    # The node answers each frame with about 1.4 MB of images, more than Fast DDS's default shared-memory
    # segment: without the shipped profile reliable samples wait for a retransmission (seconds per stall).
    profile = resolve_profile(AUTO)
    use_profile(profile)  # before this process's first DDS participant
    # the bag's camera_info goes out beside each frame; with the generated camera's pose (pitch 0, above the
    # point of the road that is base_frame's origin) the node places the obstacles on the road
    replayer = Replayer(out / "drive", TOPIC, rate=s.rate or 1.0, max_speed=s.rate is None, frame_timeout=30.0,
                        camera_info="auto")
    pose = {"pose_source": "parameters", "base_frame": BASE_FRAME, "camera_height": frames[0].camera_height,
            "camera_pitch": 0.0, "camera_roll": 0.0, "camera_yaw": 0.0, "camera_x": 0.0, "camera_y": 0.0}
    # the car's own bonnet, where the street has one: what a vehicle's ego mask is (the generator knows it)
    from hypood_ros.synthetic.canvas import VOID

    ego = (frames[0].label == VOID) & ~frames[0].ood
    if ego.any():
        from hypood_ros.images import write_image

        write_image(out / "ego_mask.png", ego.astype(np.uint8) * np.uint8(255))
        pose["ego_mask"] = str(out / "ego_mask.png")
    else:
        ego = None
    extra = ["-p", f"input_height:={s.input_size[0]}", "-p", f"input_width:={s.input_size[1]}"]
    for name, value in pose.items():
        extra += ["-p", f"{name}:={value!r}" if isinstance(value, float) else f"{name}:={value}"]
    launcher = NodeLauncher(node_arguments(str(s.model), TOPIC, False, params_file=s.params, extra=extra,
                                           qos=replayer.qos,  # the node subscribes as the replay publishes
                                           camera_info=replayer.publish_info_topic),
                            env=profile_env(profile, dict(os.environ, PYTHONUNBUFFERED="1")), echo=say)
    recorder = None
    ok = False
    try:
        launcher.wait_ready()
        recorder = RecorderThread(out / "outputs", "mcap")
        with _bar(s.frames, "replay", s.progress) as bar:
            summary = replayer.run(recorder, bar)
        ok = True
    finally:
        if recorder is not None:
            record = recorder.close(success=ok)
        code = launcher.stop()
    if not ok:
        raise HypoodError("replay failed; node output:\n" + "\n".join(launcher.lines[-10:]))
    ready = launcher.ready_line or ""
    for line in summary.lines():
        say("      " + line)

    lap("node_and_replay")
    say("[3/4] reading the recorded outputs: pictures, mIoU, the node's mask, score and obstacles")
    outputs = recorded_outputs(record)
    measure = ObstacleMeasure(frames[0], params, recorded_obstacles(record), ego)
    by_stamp = {f.stamp_ns: f for f in frames}
    matrix = np.zeros((19, 19), np.int64)
    node_sample = PixelSample()
    mask_hits = np.zeros(2, np.int64)  # OOD pixels flagged, OOD pixels
    id_flagged = np.zeros(2, np.int64)  # ID pixels flagged, ID pixels
    gif, rows, complete = [], {}, 0
    picks = set(_pick_rows(anomaly_idx, len(frames), s.sheet_rows))
    for stamp, f in sorted(by_stamp.items()):
        if any(stamp not in got for got in outputs.values()):
            continue  # a frame the node did not answer on every output (counted in the replay summary)
        complete += 1
        labels, score = outputs[T["labels"]][stamp], outputs[T["score"]][stamp]
        mask = outputs[T["mask"]][stamp] > 0
        matrix += confusion(labels.astype(np.int64), f.label, 19)
        gt = f.ood_label
        mask_hits += [int((mask & (gt == 1)).sum()), int((gt == 1).sum())]
        id_flagged += [int((mask & (gt == 0)).sum()), int((gt == 0).sum())]
        missed = []
        if f.ood.any():
            node_sample.add(score, gt)
            missed = measure.add(f, stamp, mask, labels)
        gif.append(outputs[T["overlay"]].get(stamp, f.rgb))
        if f.index in picks:
            rows[f.index] = {"index": f.index, "camera": f.rgb, "color": outputs[T["color"]][stamp],
                             "heat": heat_map(score), "overlay": outputs[T["overlay"]][stamp],
                             "obstacles": obstacle_picture(f.rgb, measure.camera, measure.pose,
                                                           measure.reports.get(stamp, []), missed)}
    contact_sheet([rows[i] for i in sorted(rows)], out / "contact_sheet.png")
    write_gif(gif, out / "overlay.gif", s.fps)
    miou_value, ious = miou(matrix)

    lap("pictures_and_node_metrics")
    say(f"[4/4] every score on the {len(anomaly_names)} anomaly frames with the project's evaluator")
    backend = load_backend(str(s.model), device="cpu", input_hw=tuple(s.input_size))
    eval_params = {name: float(params.get(name, default(name))) for name in ("eta", "lam", "delta")}
    names = select_scores("all", False)
    scores = {}
    for track in TRACKS:
        dataset = open_dataset(track, out / "anomaly_frames")
        with _bar(len(dataset.samples), f"evaluate {track}", s.progress) as bar:
            scores[track] = evaluate(backend, dataset, names, out / "eval" / track, eval_params, heatmaps=0,
                                     progress=bar)
    backend.close()
    lap("evaluator")

    lat = np.asarray(summary.latencies) * 1e3
    answered = summary.answered.get(topics.PRIMARY, 0)
    best = {track: max(scores[track], key=lambda n: scores[track][n]["AP"]) for track in TRACKS}
    from hypood_ros.visualize import CLASS_NAMES

    result = {
        "note": "generated scenes and a small model trained on them: a demonstration of the pipeline, "
                "not the paper's numbers",
        "model": str(s.model), "params": str(s.params) if s.params else None, "node": ready.split("ready: ", 1)[-1],
        "dds_profile": str(profile) if profile else None,
        "drive": {"seed": s.seed, "frames": s.frames, "fps": s.fps, "speed_mps": s.speed, "size": list(s.size),
                  "anomaly_family": "evaluation", "anomalies": s.anomalies, "anomaly_frames": len(anomaly_idx),
                  "camera_height_m": frames[0].camera_height, "horizon": frames[0].horizon},
        "replay": {"sent": summary.sent, "answered": summary.answered, "dropped": summary.dropped,
                   "complete_frames": complete,
                   "mode": "max-speed" if s.rate is None else f"rate {s.rate:g}",
                   "camera_info": summary.camera_info,
                   "obstacle_outputs": {name: summary.geometry.get(name, 0)
                                        for name in topics.OBSTACLE_OUTPUTS.values()},
                   "throughput_fps": answered / summary.duration if summary.duration > 0 else 0.0,
                   "latency_ms": {"p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
                                  "p99": float(np.percentile(lat, 99)), "max": float(lat.max())}
                   if lat.size else None, "node_exit_code": code},
        "segmentation": {"mIoU": miou_value, "iou": {CLASS_NAMES[k]: (None if np.isnan(v) else float(v))
                                                     for k, v in enumerate(ious)},
                         "source": "node's semantic/labels vs generated train ids, all frames"},
        "node_output": {"score": measure.settings["score"], "threshold": measure.settings["threshold"],
                        "mask_settings": {n: measure.settings[n] for n in MASK_PARAMS[2:]},
                        "pose": pose,
                        "metrics": node_sample.metrics() if node_sample.seen[True] else None,
                        "mask_recall": float(mask_hits[0] / max(mask_hits[1], 1)),
                        "mask_false_positive_rate": float(id_flagged[0] / max(id_flagged[1], 1)),
                        "source": "recorded ood/score and ood/mask on the anomaly frames"},
        "obstacles": measure.summary(),
        "scores": scores,
        "evaluation": {"tracks": {"smiyc-anomaly": "the whole picture is scored (void: the ego vehicle)",
                                  "smiyc-obstacle": "only the road and the obstacles on it are scored"},
                       "root": str(out / "anomaly_frames"), "params": eval_params, "input_size": list(s.input_size),
                       "same_as": f"hypood eval --dataset TRACK --root {out / 'anomaly_frames'} --model "
                                  f"{s.model} --height {s.input_size[0]} --width {s.input_size[1]} --eta "
                                  f"{eval_params['eta']} --lam {eval_params['lam']} --delta {eval_params['delta']}"
                                  " --out EVAL"},
        "comparisons": {track: {group: {n: scores[track][n]["AP"] for n in members}
                                for group, members in COMPARISONS.items()} for track in TRACKS},
        "best_score": {track: {"name": best[track], "AP": scores[track][best[track]]["AP"],
                               "msp_AP": scores[track]["msp"]["AP"],
                               "beats_msp": scores[track][best[track]]["AP"] > scores[track]["msp"]["AP"]}
                       for track in TRACKS},
        "files": {"contact_sheet": str(out / "contact_sheet.png"), "overlay_gif": str(out / "overlay.gif"),
                  "input_bag": str(out / "drive"), "output_bag": str(record),
                  **{f"{kind}_{track}": str(out / "eval" / track / f"{kind}.png") for track in TRACKS
                     for kind in ("pr", "roc")},
                  **{f"table_{track}": str(out / "eval" / track / "results.md") for track in TRACKS}},
        "seconds": time.monotonic() - started, "stage_seconds": stages,
    }
    (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _share(value: Optional[float], digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def obstacle_lines(o: dict) -> List[str]:
    """The printed table's obstacle part (the node's mask and reported obstacles against the generated ones)."""
    region, road = o["region"], o["components"]["smiyc-obstacle"]
    error, false = o["range_error"], o["false_obstacles"]
    bands = "  ".join(f"{name} m: {b['found']}/{b['found'] + b['missed']}" for name, b in o["bands"].items())
    lines = [f"  obstacles on {o['frames']} frames: {o['found']}/{o['in_view']} found by the node's mask "
             f"(sIoU >= {o['found_siou']:g}), {_share(o['share_found_within_30m'], 0)} of those within 30 m",
             f"    found / in view by true range: {bands}"]
    for errors, which in ((error, "found obstacles"), (o["range_error_any_report"], "obstacles with a report, "
                                                                                     "found or not")):
        if errors["obstacles"]:
            absolute, relative = errors["abs_m"], errors["rel"]
            lines.append(f"    reported range, error over the {errors['obstacles']} {which}: median "
                         f"{absolute['median']:.2f} m ({_share(relative['median'])}), p90 {absolute['p90']:.2f} m "
                         f"({_share(relative['p90'])})")
        else:
            lines.append(f"    reported range, error over the {which}: none to measure")
    if false["per_frame"] is not None:
        lines.append(f"    false obstacles: {false['per_frame']:.2f} per frame ({false['total']} of "
                     f"{false['reported']} reported)")
    lines += [f"  component metrics, road only: sIoU {_share(road['sIoU_gt'])}, PPV {_share(road['PPV'])}, "
              f"mean F1 {_share(road['F1_mean'])}",
              f"  node's mask inside its region (roi {region['roi']}): {_share(region['mask_recall'])} of anomaly "
              f"pixels flagged, {_share(region['mask_false_positive_rate'], 2)} of other pixels"]
    return lines


def table(result: dict) -> str:
    r, lat = result["replay"], result["replay"]["latency_ms"] or {}
    lines = [
        f"hypood demo: {r['answered'].get('ood/mask', 0)}/{r['sent']} frames answered by the node "
        f"({result['node']})",
        f"  throughput {r['throughput_fps']:.1f} frames/s ({r['mode']}), "
        f"latency ms p50 {lat.get('p50', float('nan')):.0f}"
        f" p90 {lat.get('p90', float('nan')):.0f} p99 {lat.get('p99', float('nan')):.0f}",
        f"  mIoU of the node's semantic map: {100 * result['segmentation']['mIoU']:.1f}%",
        f"  OOD on {result['drive']['anomaly_frames']} frames with anomalies never seen in training:",
        "", "  | score | AP % | AUROC % | FPR95 % | AP % road only | AUROC % road only | FPR95 % road only |",
        "  |---|---:|---:|---:|---:|---:|---:|",
    ]
    whole, road = (result["scores"][t] for t in TRACKS)
    for name, m in whole.items():
        r = road[name]
        lines.append(f"  | {name} | {100 * m['AP']:.1f} | {100 * m['AUROC']:.1f} | {100 * m['FPR95']:.1f} | "
                     f"{100 * r['AP']:.1f} | {100 * r['AUROC']:.1f} | {100 * r['FPR95']:.1f} |")
    node = result["node_output"]
    lines.append("")
    for track, label in zip(TRACKS, ("whole picture", "road only")):
        b = result["best_score"][track]
        lines.append(f"  best ({label}): {b['name']} (AP {100 * b['AP']:.1f}%) vs MSP (AP {100 * b['msp_AP']:.1f}%)")
    lines += [f"  node's mask ({node['score']} > {node['threshold']:.4g}): {100 * node['mask_recall']:.1f}% of anomaly "
              f"pixels flagged, {100 * node['mask_false_positive_rate']:.2f}% of other pixels"]
    lines += obstacle_lines(result["obstacles"])
    lines += ["  generated scenes and a small model: a demonstration of the pipeline, not the paper's numbers", ""]
    files = result["files"]
    plots = Path(files['pr_smiyc-anomaly']).parent.parent
    summary = Path(files['contact_sheet']).parent / 'summary.json'
    lines += [f"  pictures: {files['contact_sheet']}  {files['overlay_gif']}  {plots}/*/pr.png, roc.png",
              f"  recorded outputs: {files['output_bag']}   summary: {summary}",
              f"  ({result['seconds']:.0f} s)"]
    return "\n".join(lines)
