"""Readers for the OOD segmentation benchmarks in their published directory layouts.

Every reader yields (name, image path, label path) and maps the dataset's label values to
0 = in-distribution, 1 = OOD, 255 = void. A missing file or an unexpected label value is an error
that names the file.

| name | layout under --data-root | label values |
|---|---|---|
| smiyc-anomaly | dataset_AnomalyTrack/images/X.jpg, labels_masks/X_labels_semantic.png | 0 / 1 / 255 |
| smiyc-obstacle | dataset_ObstacleTrack/images/X.webp, labels_masks/X_labels_semantic.png | 0 / 1 / 255 |

SMIYC samples follow the benchmark code's validation splits (road-anomaly-benchmark, `AnomalyTrack-validation`
and `ObstacleTrack-validation`): Anomaly Track frames named `validation*`; Obstacle Track frames of the
`validation` scene (name before the first `_`) except those starting with `validation_19` or
`validation_21` ... `validation_29`, which the benchmark leaves out. Frames left out are listed in
`OODDataset.left_out`.
| road-anomaly | frame_list.json, frames/X.jpg, frames/X.labels/labels_semantic.png | 0 / 2 (OOD) |
| fs-lostandfound | fishyscapes_lostandfound/NNNN_X_labels.png, laf_images/X_leftImg8bit.png | 0 / 1 / 255 |
| fs-static | fs_val_v1/X_labels.png (or v2), fs_static_images_v1/X_rgb.png | 0 / 1 / 255 |
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np

from hypood_ros.errors import HypoodError
from hypood_ros.images import IMAGE_SUFFIXES


class DatasetError(HypoodError):
    """A benchmark folder does not match its published layout, or a label has unexpected values."""


@dataclass(frozen=True)
class Sample:
    name: str
    image: Path
    label: Path


@dataclass
class OODDataset:
    name: str
    root: Path
    samples: List[Sample]
    mapping: Dict[int, int]  # raw label value -> 0 / 1 / 255
    left_out: List[str] = field(default_factory=list)  # frames the official split leaves out

    def load(self, sample: Sample) -> Tuple[np.ndarray, np.ndarray]:
        from hypood_ros.errors import FrameError
        from hypood_ros.images import read_image

        for path in (sample.image, sample.label):
            if not path.is_file():
                raise DatasetError(f"{self.name}: missing file {path}")
        try:
            rgb = read_image(sample.image)
        except FrameError as exc:
            raise DatasetError(f"{sample.image}: {exc}") from None
        return rgb, self.read_label(sample.label, rgb.shape[:2])

    def read_label(self, path: Path, size) -> np.ndarray:
        import cv2

        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise DatasetError(f"{path}: unreadable label image")
        if raw.ndim == 3:
            raw = raw[:, :, 2]  # the red channel (the UEM authors' readers use channel 0 after BGR -> RGB)
        if raw.shape[:2] != tuple(size):
            raise DatasetError(f"{path}: label is {raw.shape[1]}x{raw.shape[0]}, image is {size[1]}x{size[0]}")
        values = np.unique(raw)
        unknown = [int(v) for v in values if int(v) not in self.mapping]
        if unknown:
            raise DatasetError(f"{path}: label values {unknown} out of range for {self.name} "
                               f"(expected {sorted(self.mapping)})")
        lut = np.full(256 if raw.dtype == np.uint8 else 65536, 255, np.uint8)
        for src, dst in self.mapping.items():
            lut[src] = dst
        return lut[raw]


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DatasetError(f"{what} not found: {path} (see `hypood eval --help` for the expected layout)")
    return path


def _find_image(folder: Path, stem: str) -> Path:
    for suffix in IMAGE_SUFFIXES:
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    return folder / (stem + IMAGE_SUFFIXES[0])  # reported as missing when loaded


#: Obstacle Track validation frames the benchmark code leaves out (prefixes, as it matches them).
OBSTACLE_VALIDATION_LEFT_OUT = ("validation_19",) + tuple(f"validation_{i}" for i in range(21, 30))


def _in_smiyc_split(track: str, name: str) -> bool:
    if track == "AnomalyTrack":
        return name.startswith("validation")
    return name.split("_")[0] == "validation" and not name.startswith(OBSTACLE_VALIDATION_LEFT_OUT)


#: Why frames of each SMIYC track are left out, in the words `left_out_line` prints.
SPLIT_RULES = {"AnomalyTrack": "the benchmark evaluates only the validation* frames",
               "ObstacleTrack": "the benchmark evaluates only the validation_* scene and leaves out validation_19* "
                                "and validation_21* to validation_29*"}


def left_out_line(dataset: "OODDataset", shown: int = 5) -> str:
    """One line naming the frames the benchmark's split leaves out and why ('' when none are)."""
    names = dataset.left_out
    if not names:
        return ""
    track = "AnomalyTrack" if dataset.name == "smiyc-anomaly" else "ObstacleTrack"
    listed = ", ".join(names[:shown]) + (f" and {len(names) - shown} more (all in results.json meta.left_out)"
                                         if len(names) > shown else "")
    return f"{len(names)} frame{'s' if len(names) > 1 else ''} left out ({SPLIT_RULES[track]}): {listed}"


def _smiyc(track: str) -> Callable[[Path], List[Sample]]:
    def read(root: Path) -> List[Sample]:
        base = _require(root / f"dataset_{track}", f"SMIYC {track} folder")
        labels = sorted(_require(base / "labels_masks", "labels_masks folder").glob("*_labels_semantic.png"))
        return [Sample(p.name[: -len("_labels_semantic.png")],
                       _find_image(base / "images", p.name[: -len("_labels_semantic.png")]), p) for p in labels]
    return read


def _road_anomaly(root: Path) -> List[Sample]:
    frames = _require(root / "frames", "frames folder")
    try:
        names = json.loads(_require(root / "frame_list.json", "frame_list.json").read_text())
    except ValueError as exc:
        raise DatasetError(f"{root / 'frame_list.json'}: invalid JSON: {exc}") from None
    return [Sample(Path(n).stem, frames / n, frames / (Path(n).stem + ".labels") / "labels_semantic.png")
            for n in names]


def _fs_lostandfound(root: Path) -> List[Sample]:
    labels = sorted(_require(root / "fishyscapes_lostandfound", "fishyscapes_lostandfound folder").glob("*.png"))
    images = root / "laf_images"
    return [Sample(p.stem, images / (p.name[5:-len("labels.png")] + "leftImg8bit.png"), p) for p in labels]


def _fs_static(root: Path) -> List[Sample]:
    for version in (1, 2):
        labels_root = root / f"fs_val_v{version}"
        if labels_root.is_dir():
            images = root / f"fs_static_images_v{version}"
            return [Sample(p.stem, images / (p.name[: -len("labels.png")] + "rgb.png"), p)
                    for p in sorted(labels_root.glob("*labels.png"))]
    raise DatasetError(f"Fishyscapes Static labels not found: {root}/fs_val_v1 (or fs_val_v2)")


#: The published layout of each dataset under --data-root (`hypood eval --help` prints it).
LAYOUTS: Dict[str, str] = {
    "smiyc-anomaly": "dataset_AnomalyTrack/images/NAME.png (or .jpg, .webp ...) + "
                     "dataset_AnomalyTrack/labels_masks/NAME_labels_semantic.png (0 in-distribution, 1 anomaly, "
                     "255 void); the validation_* frames are evaluated",
    "smiyc-obstacle": "dataset_ObstacleTrack/images/NAME.png (or .jpg, .webp ...) + "
                      "dataset_ObstacleTrack/labels_masks/NAME_labels_semantic.png; the benchmark's validation "
                      "frames are evaluated",
    "road-anomaly": "frame_list.json (image file names) + frames/NAME.jpg + frames/NAME.labels/labels_semantic.png "
                    "(0 in-distribution, 2 anomaly: unlike the SMIYC layouts (1 anomaly, 255 void) the format has "
                    "no void value, so every pixel is scored)",
    "fs-lostandfound": "fishyscapes_lostandfound/*labels.png + laf_images/*leftImg8bit.png",
    "fs-static": "fs_val_v1/*labels.png (or fs_val_v2) + fs_static_images_v1/*rgb.png (or _v2)",
}

READERS: Dict[str, Tuple[Callable[[Path], List[Sample]], Dict[int, int]]] = {
    "smiyc-anomaly": (_smiyc("AnomalyTrack"), {0: 0, 1: 1, 255: 255}),
    "smiyc-obstacle": (_smiyc("ObstacleTrack"), {0: 0, 1: 1, 255: 255}),
    "road-anomaly": (_road_anomaly, {0: 0, 2: 1}),
    "fs-lostandfound": (_fs_lostandfound, {0: 0, 1: 1, 255: 255}),
    "fs-static": (_fs_static, {0: 0, 1: 1, 255: 255}),
}


def open_dataset(name: str, root: str | os.PathLike) -> OODDataset:
    if name not in READERS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(READERS)}")
    read, mapping = READERS[name]
    root = _require(Path(root), "dataset root")
    samples = read(root)
    left_out: List[str] = []
    if name.startswith("smiyc"):
        track = "AnomalyTrack" if name == "smiyc-anomaly" else "ObstacleTrack"
        left_out = [s.name for s in samples if not _in_smiyc_split(track, s.name)]
        samples = [s for s in samples if _in_smiyc_split(track, s.name)]
    if not samples:
        raise DatasetError(f"{name}: no samples found under {root}"
                           + (f" ({len(left_out)} outside the benchmark's validation split)" if left_out else ""))
    return OODDataset(name, root, samples, mapping, left_out)
