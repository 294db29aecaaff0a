"""One bag through one or two models, offline: the unit of work of `hypood fleet`. ROS-free and Ray-free.

- `plan_jobs(bags, topic, options)`: each bag's image topics (or the one asked for) as `BagJob`s, their frame
  counts from the bag's index, and a key made of the bag's bytes, the models' and params files' bytes and
  the options (`Options.identity`): the same key means the same results, so a finished job can be skipped.
- `BagWorker(options)`: loads the model(s) once; `run(job)` reads the bag's frames (every n-th), runs the
  frame pipeline (`FramePipeline.process`, the node's own chain) and yields `("frame", record)` per frame
  and `("done", result)` at the end, or `("error", message)` for a bag it cannot read.
- `run_sequential(jobs, options)`: the plain loop over jobs, the reference the Ray engine must equal.

A frame record is a flat dict (one row of frames.csv): the share of the mask's region flagged, components,
obstacles and their ranges (with the bag's camera_info and the pose from the params file), class shares;
with a baseline, mask IoU, components gained and lost; with ground truth in the bag, pixel counts. The
bag result carries what only a whole bag gives: the pixel sample for AP and the component tally, both as
`hypood eval` computes them, and the thumbnails of the frames to look at.
"""
from __future__ import annotations

import hashlib
import heapq
import math
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from hypood_ros.errors import FrameError, HypoodError

#: Version of the records and results: part of every key, so a new format redoes old results.
FORMAT = 1
#: Component sizes of the ground-truth metrics: the generated labels are whole-picture (AnomalyTrack) labels.
GT_TRACK = "smiyc-anomaly"


def file_digest(paths: Iterable[Path], hasher=None) -> str:
    """sha256 over the names (relative to their folder) and bytes of `paths`, in the order given."""
    h = hasher or hashlib.sha256()
    for path in paths:
        path = Path(path)
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def bag_digest(path: str | os.PathLike) -> str:
    """The bag's content hash: every file of a bag folder (sorted), or the one file."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return file_digest(files)


@dataclass(frozen=True)
class ModelSpec:
    """A model file and the params files the node would read with it (later files win, as in ROS)."""

    path: str
    params_files: Tuple[str, ...] = ()

    def values(self) -> Dict[str, object]:
        from hypood_ros.node.params_files import checked_values

        merged: Dict[str, object] = {}
        for file in self.params_files:
            merged.update(checked_values(file)[0])
        return merged

    def digest(self) -> str:
        return file_digest([Path(self.path), *map(Path, self.params_files)])


@dataclass(frozen=True)
class Options:
    """What changes the results of a bag (all of it in `identity`, the key), and how a worker runs."""

    model: ModelSpec
    baseline: Optional[ModelSpec] = None
    every: int = 1  # every n-th frame of the topic
    device: str = "cpu"
    threads: int = 1  # torch threads per worker (0: torch's default)
    top_k: int = 6  # thumbnails per bag: lowest IoU with a baseline, else the most flagged frames
    thumb_width: int = 240
    capacity: int = 2_000_000  # pixel sample of the ground-truth AP, per bag and model

    def identity(self, digests: Optional[Dict[str, str]] = None) -> Dict[str, object]:
        """JSON-ready: the file hashes and every option that changes a record (threads change float
        reductions, so they are part of it too)."""
        digests = digests or {}
        model = digests.get("model") or self.model.digest()
        base = None if self.baseline is None else (digests.get("baseline") or self.baseline.digest())
        return {"format": FORMAT, "model": model, "baseline": base, "every": self.every, "device": self.device,
                "threads": self.threads, "top_k": self.top_k, "thumb_width": self.thumb_width,
                "capacity": self.capacity}


@dataclass(frozen=True)
class BagJob:
    bag: str
    topic: str
    frames: int  # frames this job processes (every n-th of the topic's messages)
    key: str  # sha256 of the bag's content hash, the topic and Options.identity
    name: str  # the job's output folder name (stable for a bag path and topic)
    camera_info: Optional[str] = None  # the sibling CameraInfo topic, when the bag has it
    labels: Optional[str] = None  # the sibling ground-truth topic, when the bag has it


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_") or "bag"


def job_name(bag: str | os.PathLike, topic: str) -> str:
    path = Path(bag).resolve()
    tag = hashlib.sha1(f"{path}\0{topic}".encode()).hexdigest()[:6]
    stem = path.name if path.is_dir() else path.stem
    return f"{_slug(stem)}_{_slug(topic.strip('/').replace('/', '_'))[:40]}-{tag}"


def image_topics(topics: Dict[str, Tuple[str, int]]) -> List[str]:
    """Every Image / CompressedImage topic of a bag except ground-truth label topics."""
    from hypood_ros.bags import IMAGE_TYPES
    from hypood_ros.topics import OOD_LABEL

    return sorted(t for t, (kind, _) in topics.items() if kind in IMAGE_TYPES and t.rsplit("/", 1)[-1] != OOD_LABEL)


def plan_jobs(bags: Sequence[str], topic: str, options: Options,
              digests: Optional[Dict[str, str]] = None) -> Tuple[List[BagJob], List[Tuple[str, str]]]:
    """(jobs, failures): a job per bag and image topic (`topic` "auto": every image topic); a bag that cannot
    be read, or lacks the topic, is a failure (bag, one-line reason) and the others go on."""
    from hypood_ros.bags import CAMERA_INFO, IMAGE, IMAGE_TYPES, topic_counts
    from hypood_ros.topics import camera_info_for, label_topic_for

    identity = options.identity(digests)
    jobs, failures = [], []
    for bag in bags:
        try:
            topics = topic_counts(bag)
            chosen = image_topics(topics) if topic == "auto" else [topic]
            if not chosen:
                raise HypoodError(f"{bag}: no Image or CompressedImage topic")
            for t in chosen:
                if t not in topics or topics[t][0] not in IMAGE_TYPES:
                    found = f"has type {topics[t][0]}" if t in topics else "is not in the bag"
                    raise HypoodError(f"{bag}: image topic {t!r} {found}")
            content = bag_digest(bag)
        except (HypoodError, OSError) as exc:
            failures.append((str(bag), str(exc).splitlines()[0]))
            continue
        for t in chosen:
            count = topics[t][1]
            if count == 0:
                failures.append((str(bag), f"{bag}: no messages on {t!r}"))
                continue
            info, labels = camera_info_for(t), label_topic_for(t)
            key = hashlib.sha256(repr((content, t, sorted(identity.items()))).encode()).hexdigest()
            jobs.append(BagJob(str(bag), t, math.ceil(count / options.every), key, job_name(bag, t),
                               info if topics.get(info, ("",))[0] == CAMERA_INFO else None,
                               labels if topics.get(labels, ("",))[0] == IMAGE else None))
    return jobs, failures


class _Model:
    """One model's pipeline and what its params file says about the camera's pose and the region."""

    def __init__(self, spec: ModelSpec, device: str, need_score: bool) -> None:
        from hypood_ros.defaults import default
        from hypood_ros.geometry import CameraPose
        from hypood_ros.pipeline import PIPELINE_FIELDS, FramePipeline, PipelineConfig
        from hypood_ros.runtimes import load_backend, resolve_input_size

        values = spec.values()
        self.values = {name: values.get(name, default(name)) for name in (
            "camera_height", "camera_roll", "camera_pitch", "camera_yaw", "camera_x", "camera_y", "max_range",
            "corridor_half_width", "corridor_height", "corridor_min_range", "image_rectified")}
        outputs = {"labels", "mask", "region"} | ({"score"} if need_score else set())
        config = PipelineConfig(**{n: values[n] for n in PIPELINE_FIELDS if n in values}, outputs=outputs)
        size = resolve_input_size(spec.path, int(values.get("input_height", 0)), int(values.get("input_width", 0)))
        stats = ego = None
        if values.get("sml_stats"):
            from hypood_ros.scores import load_sml_stats

            stats = load_sml_stats(values["sml_stats"])
        if values.get("ego_mask"):
            from hypood_ros.roi import load_ego_mask

            ego = load_ego_mask(values["ego_mask"])
        self.pipeline = FramePipeline(load_backend(spec.path, device=device, input_hw=size.hw), config,
                                      sml_stats=stats, ego_mask=ego)
        self.pipeline.warm_up()
        v = self.values
        self.pose = CameraPose.from_parameters(v["camera_height"], v["camera_roll"], v["camera_pitch"],
                                               v["camera_yaw"], v["camera_x"], v["camera_y"])

    def corridor(self, camera) -> Optional[np.ndarray]:
        from hypood_ros.geometry import corridor_mask
        from hypood_ros.roi import GEOMETRY_MODES

        if camera is None or self.pipeline.config.roi not in GEOMETRY_MODES:
            return None
        v = self.values
        return corridor_mask(camera, self.pose, v["corridor_half_width"], v["max_range"], v["corridor_height"],
                             v["corridor_min_range"])

    def obstacles(self, mask: np.ndarray, camera) -> Optional[np.ndarray]:
        """Ranges (metres, nearest first) of the obstacles the node would report; None without a camera."""
        from hypood_ros.geometry import find_obstacles

        if camera is None:
            return None
        found = find_obstacles(mask, camera, self.pose, float(self.values["max_range"]), free_space=False)
        return np.sort(np.asarray(found.range, np.float64))


def components(mask: np.ndarray) -> Tuple[np.ndarray, int]:
    """8-connected components of a mask: (ids [H,W] int32, count)."""
    import cv2

    count, ids = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)
    return ids, count - 1


def unmatched(ids: np.ndarray, count: int, other: np.ndarray) -> int:
    """Components of `ids` that share no pixel with the mask `other`."""
    if count == 0:
        return 0
    touched = np.unique(ids[(ids > 0) & (other > 0)])
    return count - touched.size


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two masks (1 when both are empty)."""
    a, b = a > 0, b > 0
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union


def thumbnail(rgb: np.ndarray, masks: Sequence[np.ndarray], width: int) -> np.ndarray:
    """camera | camera with each mask tinted, side by side, each tile `width` pixels wide."""
    import cv2

    from hypood_ros.visualize import overlay

    h, w = rgb.shape[:2]
    size = (width, max(1, round(h * width / w)))
    tiles = [cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)]
    tiles += [cv2.resize(overlay(rgb, m, 0.6), size, interpolation=cv2.INTER_AREA) for m in masks]
    return np.concatenate(tiles, 1)


def _camera(job: BagJob):
    """The camera model of the bag's first CameraInfo, or (None, reason)."""
    from hypood_ros.bags import read_messages
    from hypood_ros.geometry import CameraModel
    from hypood_ros.geometry.camera import CameraError

    if job.camera_info is None:
        return None, "no camera_info in the bag"
    for message in read_messages(job.bag, job.camera_info):
        info = message.msg
        try:
            return CameraModel.from_camera_info(info.width, info.height, list(info.k), list(info.d),
                                                info.distortion_model, list(info.p)), ""
        except CameraError as exc:
            return None, f"{job.camera_info}: {exc}"
    return None, f"{job.camera_info} has no messages"


def _stamp(msg) -> int:
    return int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)


class _Labels:
    """The ground-truth label of each frame, read in step with the frames (both in recorded order)."""

    def __init__(self, job: BagJob) -> None:
        from hypood_ros.bags import read_messages

        self._messages = read_messages(job.bag, job.labels) if job.labels else iter(())
        self._next = None

    def at(self, stamp: int) -> Optional[np.ndarray]:
        from hypood_ros.conversion import image_to_rgb

        while True:
            if self._next is None:
                self._next = next(self._messages, None)
                if self._next is None:
                    return None
            have = _stamp(self._next.msg)
            if have > stamp:
                return None
            msg, self._next = self._next.msg, None
            if have == stamp:
                rgb = image_to_rgb(msg.height, msg.width, msg.encoding, msg.step, msg.data, msg.is_bigendian)
                return rgb[:, :, 0]

    def close(self) -> None:
        getattr(self._messages, "close", lambda: None)()


@dataclass
class _Truth:
    """One model's ground-truth metrics over a bag: `hypood eval`'s pixel sample and mask tally."""

    sample: object
    tally: object

    @classmethod
    def new(cls, seed: int) -> "_Truth":
        from hypood_ros.evaluation.mask_metrics import MaskTally
        from hypood_ros.evaluation.metrics import PixelSample

        return cls(PixelSample(seed=seed), MaskTally(GT_TRACK))


@dataclass
class _Top:
    """The k frames to look at: a min-heap of (rank, -frame, thumbnail) keeping the highest ranks."""

    k: int
    heap: list = field(default_factory=list)

    def offer(self, rank: float, frame: int, make) -> None:
        if self.k <= 0 or rank <= 0:  # nothing to look at: the masks agree, or nothing is flagged
            return
        item = (rank, -frame)
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, (*item, make()))
        elif item > self.heap[0][:2]:
            heapq.heapreplace(self.heap, (*item, make()))

    def items(self) -> List[Tuple[float, int, np.ndarray]]:
        return [(rank, -neg, image) for rank, neg, image in sorted(self.heap, key=lambda x: (-x[0], -x[1]))]


class BagWorker:
    """The models of one worker (loaded once) and the work on one bag at a time."""

    def __init__(self, options: Options) -> None:
        if options.threads > 0:
            import torch

            torch.set_num_threads(options.threads)
        self.options = options
        self.model = _Model(options.model, options.device, need_score=True)
        self.baseline = None if options.baseline is None else _Model(options.baseline, options.device, True)
        self.classes = list(self.model.pipeline.classes.names)

    def run(self, job: BagJob) -> Iterator[Tuple[str, object]]:
        """("frame", record) per frame in order, then ("done", result); ("error", message) for a bag it cannot
        read (after the frames it could)."""
        try:
            yield from self._run(job)
        except HypoodError as exc:
            yield "error", str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__

    def _run(self, job: BagJob) -> Iterator[Tuple[str, object]]:
        from hypood_ros.bags import frame_rgb, read_frames

        started = time.perf_counter()
        cpu = time.process_time()
        camera, camera_note = _camera(job)
        corridors = {"model": self.model.corridor(camera),
                     "baseline": self.baseline.corridor(camera) if self.baseline else None}
        seed = int(job.key[:8], 16)
        truth = {"model": _Truth.new(seed), "baseline": _Truth.new(seed) if self.baseline else None}
        labels = _Labels(job)
        top = _Top(self.options.top_k)
        done = skipped = with_truth = 0
        skip_reason = ""
        try:
            for index, frame in enumerate(read_frames(job.bag, job.topic)):
                if index % self.options.every:
                    continue
                stamp = _stamp(frame.msg)
                try:
                    rgb = frame_rgb(frame)
                except FrameError as exc:  # one bad message: skipped and counted, the bag goes on
                    skipped += 1
                    skip_reason = skip_reason or f"frame {index}: {exc}"
                    continue
                label = labels.at(stamp) if job.labels else None
                if label is not None and label.shape != rgb.shape[:2]:
                    label = None
                record, masks = self._frame(job, index, stamp, rgb, camera, corridors, label, truth)
                with_truth += label is not None
                rank = (1.0 - record["iou"]) if self.baseline else record["flagged_share"]
                top.offer(rank, index, lambda: thumbnail(rgb, masks, self.options.thumb_width))
                done += 1
                yield "frame", record
        finally:
            labels.close()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        yield "done", {
            "bag": job.bag, "topic": job.topic, "key": job.key, "name": job.name, "frames": done,
            "skipped": skipped, "skip_reason": skip_reason, "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu, "pid": os.getpid(), "max_rss_mb": usage.ru_maxrss / 1024,
            "camera": camera is not None, "camera_note": camera_note, "truth_frames": with_truth,
            "classes": self.classes,
            "truth": {name: (None if t is None or not with_truth else t) for name, t in truth.items()},
            "top": top.items(),
        }

    def _frame(self, job: BagJob, index: int, stamp: int, rgb: np.ndarray, camera, corridors, label, truth):
        models = [("model", self.model)] + ([("baseline", self.baseline)] if self.baseline else [])
        results = {name: m.pipeline.process(rgb, corridors[name]) for name, m in models}
        out = results["model"]
        h, w = rgb.shape[:2]
        record: Dict[str, object] = {"bag": job.bag, "topic": job.topic, "frame": index, "stamp_ns": stamp,
                                     "height": h, "width": w}
        ids = {}
        for name, model in models:
            res = results[name]
            prefix = "" if name == "model" else "base_"
            region = int(np.count_nonzero(res.region)) if res.region is not None else h * w
            flagged = int(np.count_nonzero(res.mask))
            ids[name] = components(res.mask)
            ranges = model.obstacles(res.mask, camera)
            record.update({
                f"{prefix}region_px": region, f"{prefix}flagged_px": flagged,
                f"{prefix}flagged_share": flagged / region if region else 0.0,
                f"{prefix}components": ids[name][1],
                f"{prefix}obstacles": None if ranges is None else int(ranges.size),
                f"{prefix}nearest_m": None if ranges is None or not ranges.size else round(float(ranges[0]), 3),
                f"{prefix}ranges_m": None if ranges is None else ";".join(f"{r:.2f}" for r in ranges)})
            if label is not None:
                flags = res.mask > 0
                record.update({f"{prefix}ood_px": int(np.count_nonzero(label == 1)),
                               f"{prefix}ood_flagged": int(np.count_nonzero(flags & (label == 1))),
                               f"{prefix}id_px": int(np.count_nonzero(label == 0)),
                               f"{prefix}id_flagged": int(np.count_nonzero(flags & (label == 0)))})
                truth[name].sample.add(res.score, label)
                truth[name].tally.add(res.mask, res.region, label)
        counts = np.bincount(out.labels.ravel(), minlength=len(self.classes))[: len(self.classes)]
        record.update({f"share_{_slug(c)}": round(float(n) / (h * w), 6) for c, n in zip(self.classes, counts)})
        if self.baseline:
            base = results["baseline"]
            record.update({"iou": mask_iou(out.mask, base.mask),
                           "gained": unmatched(*ids["model"], base.mask),
                           "lost": unmatched(*ids["baseline"], out.mask)})
        return record, [results[name].mask for name, _ in models]


def run_sequential(jobs: Sequence[BagJob], options: Options, worker: Optional[BagWorker] = None
                   ) -> Dict[str, Tuple[List[dict], Optional[dict], Optional[str]]]:
    """The plain loop: {job key: (frame records, result or None, error or None)}, one bag after the other."""
    worker = worker or BagWorker(options)
    out = {}
    for job in jobs:
        records, result, error = [], None, None
        for kind, item in worker.run(job):
            if kind == "frame":
                records.append(item)
            elif kind == "done":
                result = item
            else:
                error = item
        out[job.key] = (records, result, error)
    return out
