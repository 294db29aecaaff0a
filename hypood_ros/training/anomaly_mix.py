"""AnomalyMix: COCO object instances cut out and pasted onto driving scenes as outliers (UEM paper, 4.1).

Instances come from a COCO `instances_*.json` (polygons, uncompressed or compressed RLE), decoded here
without pycocotools; generated objects can stand in for them. Pasted pixels get `ood_label` in the label map.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Sequence, Tuple

import numpy as np

from hypood_ros.errors import HypoodError

# COCO categories that also exist in Cityscapes: pasting them as "unknown" would teach a contradiction.
CITYSCAPES_LIKE = {"person", "bicycle", "car", "motorcycle", "bus", "train", "truck", "traffic light", "stop sign"}


def decode_counts(counts) -> List[int]:
    """COCO RLE counts: a list of ints, or the compact string encoding (6 bits per char, LEB128-like)."""
    if isinstance(counts, list):
        return [int(c) for c in counts]
    out, p, s = [], 0, counts.encode() if isinstance(counts, str) else counts
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = s[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def rle_to_mask(counts, height: int, width: int) -> np.ndarray:
    flat = np.zeros(height * width, np.uint8)
    pos, value = 0, 0
    for run in decode_counts(counts):
        flat[pos: pos + run] = value
        pos += run
        value ^= 1
    if pos != height * width:
        raise HypoodError(f"RLE covers {pos} pixels, image has {height * width}")
    return flat.reshape(width, height).T  # COCO RLE runs down columns


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    import cv2

    mask = np.zeros((height, width), np.uint8)
    for poly in polygons:
        pts = np.asarray(poly, np.float64).reshape(-1, 2)
        if len(pts) >= 3:
            cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask


@dataclass
class Instance:
    image: Path
    segmentation: object
    height: int
    width: int
    bbox: Tuple[float, float, float, float]


def load_instances(annotations: str, images: str, min_area: float = 1000.0) -> List[Instance]:
    try:
        data = json.loads(Path(annotations).read_text())
    except (OSError, ValueError) as exc:
        raise HypoodError(f"cannot read COCO annotations {annotations}: {exc}") from None
    files = {img["id"]: img for img in data.get("images", [])}
    names = {c["id"]: c["name"] for c in data.get("categories", [])}
    out = []
    for ann in data.get("annotations", []):
        if ann.get("iscrowd") or ann.get("area", 0) < min_area or names.get(ann["category_id"]) in CITYSCAPES_LIKE:
            continue
        img = files.get(ann["image_id"])
        if img is None:
            raise HypoodError(f"{annotations}: annotation {ann.get('id')} refers to a missing image")
        out.append(Instance(Path(images) / img["file_name"], ann["segmentation"], img["height"], img["width"],
                            tuple(ann["bbox"])))
    if not out:
        raise HypoodError(f"{annotations}: no usable instances (non-crowd, non-road-user, area >= {min_area})")
    return out


def instance_mask(inst: Instance) -> np.ndarray:
    seg = inst.segmentation
    if isinstance(seg, list):
        return polygons_to_mask(seg, inst.height, inst.width)
    if isinstance(seg, dict) and "counts" in seg:
        h, w = seg.get("size", (inst.height, inst.width))
        return rle_to_mask(seg["counts"], h, w)
    raise HypoodError(f"unsupported segmentation for {inst.image}")


class CocoObjects:
    """Source of outliers: a random COCO instance, `(rng) -> (rgb, mask)` cropped to its box."""

    def __init__(self, instances: List[Instance]) -> None:
        self.instances = instances

    def __call__(self, rng: random.Random) -> Tuple[np.ndarray, np.ndarray]:
        from hypood_ros.images import read_image

        inst = self.instances[rng.randrange(len(self.instances))]
        mask = instance_mask(inst)
        x, y, w, h = (int(round(v)) for v in inst.bbox)
        obj = read_image(inst.image)[y: y + max(h, 1), x: x + max(w, 1)]
        return obj, mask[y: y + max(h, 1), x: x + max(w, 1)]


class AnomalyMix:
    """Callable (rgb, label, rng) -> (rgb, label) used by the training dataset.

    `objects(rng) -> (rgb, mask)` supplies the outlier to paste: `CocoObjects` (the paper's COCO
    instances) or `hypood_ros.synthetic.anomalies.SyntheticOutliers` (generated objects).
    """

    def __init__(self, objects: Callable[[random.Random], Tuple[np.ndarray, np.ndarray]], prob: float,
                 scale: Sequence[float], ood_label: int, ignore: int = 255) -> None:
        self.objects, self.prob, self.scale = objects, prob, scale
        self.ood_label, self.ignore = ood_label, ignore

    def __call__(self, rgb: np.ndarray, label: np.ndarray, rng: random.Random):
        import cv2

        if rng.random() >= self.prob:
            return rgb, label
        obj, mask = self.objects(rng)
        if obj.size == 0 or mask.sum() == 0:
            return rgb, label
        mask = mask.astype(np.uint8)
        target_h = max(2, int(rgb.shape[0] * rng.uniform(*self.scale)))
        target_w = max(2, min(rgb.shape[1], int(obj.shape[1] * target_h / obj.shape[0])))
        target_h = min(target_h, rgb.shape[0])
        obj = cv2.resize(obj, (target_w, target_h), interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(mask, (target_w, target_h), interpolation=cv2.INTER_NEAREST).astype(bool)
        top = rng.randint(0, rgb.shape[0] - target_h)
        left = rng.randint(0, rgb.shape[1] - target_w)
        rgb, label = rgb.copy(), label.copy()
        rgb[top: top + target_h, left: left + target_w][mask] = obj[mask]
        label[top: top + target_h, left: left + target_w][mask] = self.ood_label
        return rgb, label
