"""Obstacles found and ranged: known obstacles against a mask, and the obstacles a node reported (ROS-free).

A scene generator knows each obstacle it drew: its pixels (an instance map) and its true range. Per frame:

- found or missed: an obstacle is found when its sIoU against the mask is at least `FOUND_SIOU` (0.25, the
  benchmark's lowest sIoU threshold). sIoU is the SMIYC benchmark's (`components`), with the known obstacles
  as the ground-truth components (two touching obstacles stay two) under the track's size rules; an
  obstacle smaller than the track's smallest ground-truth component counts nowhere, as in the benchmark.
- reported obstacles are matched to known ones by their ground point in the picture (`match_reports`);
  a reported obstacle matched to none is a false obstacle.
- the range error of a found obstacle: the range reported for it (the nearest of the reports matched to
  it) minus its true range. Found obstacles without a matched report, or whose ground contact the picture
  does not show (under the ego vehicle's hood, below the picture), get none and are counted apart. The
  same error over every obstacle with a matched report, found or not, says how well the node ranges what
  it reports even where its mask covers too little of the object to count it found.

`ObstacleTally` collects the frames: found and missed by true range (`RANGE_BANDS`), the share found
within 30 m, median and 90th percentile of the absolute and relative range errors, false obstacles per frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from hypood_ros.evaluation.components import instances, segment_metrics

#: An obstacle is found when its sIoU reaches this (the lowest sIoU threshold of the SMIYC tables).
FOUND_SIOU = 0.25
#: Bands of true range, metres: (name, from, up to but not including).
RANGE_BANDS: Tuple[Tuple[str, float, float], ...] = (
    ("0-10", 0.0, 10.0), ("10-20", 10.0, 20.0), ("20-30", 20.0, 30.0), ("30+", 30.0, math.inf))
#: The range within which the share of obstacles found is reported on its own.
NEAR_RANGE = 30.0
#: A reported ground point matches a known obstacle whose bounding box, widened by this many pixels, holds it.
MATCH_PIXELS = 8.0


@dataclass(frozen=True)
class KnownObstacle:
    """An obstacle in one frame whose truth is known."""
    id: int  # its id in the frame's instance map
    range: float  # true range, metres
    contact_visible: bool = True  # the picture shows where it meets the road


@dataclass(frozen=True)
class Report:
    """An obstacle a node reported in one frame."""
    range: float  # metres
    u: float  # its ground point projected into the picture (pixels; NaN: behind the camera)
    v: float


def range_band(metres: float) -> str:
    for name, low, high in RANGE_BANDS:
        if low <= metres < high:
            return name
    raise ValueError(f"no range band for {metres!r} m")


def obstacle_sious(mask: np.ndarray, label: np.ndarray, instance_map: np.ndarray,
                   sizes: Tuple[int, int]) -> Dict[int, float]:
    """{obstacle id: sIoU} of the known obstacles of one frame against `mask`.

    `label`: 0 / 1 (obstacle) / 255 (void) as the track scores it; `instance_map`: the obstacles' ids, non-zero
    exactly where label is 1; `sizes`: the track's (smallest predicted, smallest ground-truth) component
    (`components.TRACK_SIZES`). Obstacles under the smallest size are left out."""
    gt, pred = instances(mask, label, *sizes, gt_instances=instance_map)
    ids = np.flatnonzero(np.bincount(gt)[1:]) + 1
    return dict(zip(ids.tolist(), segment_metrics(gt, pred).siou_gt.tolist()))


def match_reports(points: np.ndarray, instance_map: np.ndarray, margin: float = MATCH_PIXELS) -> np.ndarray:
    """[N] known obstacle id (0: none) of each reported ground point ([N,2] u, v in pixels, pixel centres at
    integers): the obstacle whose bounding box, widened by `margin` pixels, holds the point; where several do,
    the one with a pixel nearest to it. A point between an animal's legs or just below an object's lowest
    pixel thus belongs to it; one on another part of the road, on a building or a vehicle, to none."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    out = np.zeros(len(points), np.int64)
    rows, cols = np.nonzero(instance_map)
    owner = np.asarray(instance_map)[rows, cols]
    ids = np.unique(owner)
    if not ids.size or not len(points):
        return out
    boxes = []
    for k in ids:
        r, c = rows[owner == k], cols[owner == k]
        boxes.append((int(k), c.min() - 0.5, c.max() + 0.5, r.min() - 0.5, r.max() + 0.5, c, r))
    for i, (u, v) in enumerate(points):
        if not (np.isfinite(u) and np.isfinite(v)):
            continue
        best, nearest = 0, math.inf
        for k, left, right, top, bottom, c, r in boxes:
            if math.hypot(max(left - u, 0.0, u - right), max(top - v, 0.0, v - bottom)) > margin:
                continue
            distance = float(np.min(np.hypot(c - u, r - v)))
            if distance < nearest:
                best, nearest = k, distance
        out[i] = best
    return out


def _percentiles(values: List[float]) -> Optional[Dict[str, float]]:
    if not values:
        return None
    data = np.asarray(values, np.float64)
    return {"median": float(np.median(data)), "p90": float(np.percentile(data, 90))}


def _errors(pairs: List[Tuple[float, float]]) -> Dict[str, object]:
    """Statistics of (error, true range) pairs: count, |error| and |error| / true range (median, 90th
    percentile), the median signed error."""
    return {"obstacles": len(pairs), "abs_m": _percentiles([abs(e) for e, _ in pairs]),
            "rel": _percentiles([abs(e) / r for e, r in pairs]),
            "signed_median_m": float(np.median([e for e, _ in pairs])) if pairs else None}


class ObstacleTally:
    """Known obstacles found or missed and the node's ranges, frame by frame; `summary()` at the end."""

    def __init__(self, found_siou: float = FOUND_SIOU) -> None:
        self.found_siou = found_siou
        self.frames: List[dict] = []

    def add(self, index: int, known: Sequence[KnownObstacle], sious: Dict[int, float],
            reports: Sequence[Report], matches: Sequence[int]) -> dict:
        """One frame: `known` the obstacles in view, each with its sIoU in `sious` (from `obstacle_sious`);
        `reports` and the known id each is matched to (`match_reports`; 0: none). Returns the frame's record."""
        if len(reports) != len(matches):
            raise ValueError(f"{len(reports)} reports but {len(matches)} matches")
        missing = [k.id for k in known if k.id not in sious]
        if missing:
            raise ValueError(f"no sIoU for obstacle(s) {missing}")
        rows = []
        for k in known:
            siou = float(sious[k.id])
            found = siou >= self.found_siou
            ranges = [r.range for r, m in zip(reports, matches) if m == k.id]
            reported = min(ranges) if ranges else None
            error = reported - k.range if reported is not None and k.contact_visible else None
            rows.append({"id": k.id, "true_range": k.range, "band": range_band(k.range), "siou": siou,
                         "found": found, "contact_visible": k.contact_visible, "reported_range": reported,
                         "range_error": error if found else None, "reported_range_error": error})
        record = {"index": index, "obstacles": rows, "reported": len(reports),
                  "false_obstacles": int(sum(1 for m in matches if m == 0))}
        self.frames.append(record)
        return record

    def summary(self) -> Dict[str, object]:
        """Plain numbers (JSON-ready); None where there is nothing to measure."""
        rows = [row for frame in self.frames for row in frame["obstacles"]]
        bands = {}
        for name, _, _ in RANGE_BANDS:
            found = sum(1 for r in rows if r["band"] == name and r["found"])
            missed = sum(1 for r in rows if r["band"] == name and not r["found"])
            bands[name] = {"found": found, "missed": missed,
                           "share_found": found / (found + missed) if found + missed else None}
        near = [r for r in rows if r["true_range"] < NEAR_RANGE]
        found_rows = [r for r in rows if r["found"]]
        false = [frame["false_obstacles"] for frame in self.frames]
        return {
            "found_siou": self.found_siou,
            "frames": len(self.frames),
            "in_view": len(rows),
            "found": len(found_rows),
            "missed": len(rows) - len(found_rows),
            "bands": bands,
            "share_found_within_30m": (sum(r["found"] for r in near) / len(near)) if near else None,
            "range_error": {
                **_errors([(r["range_error"], r["true_range"]) for r in found_rows if r["range_error"] is not None]),
                "found_without_report": sum(1 for r in found_rows if r["reported_range"] is None),
                "found_contact_hidden": sum(1 for r in found_rows if r["reported_range"] is not None
                                            and not r["contact_visible"]),
            },
            "range_error_any_report": _errors([(r["reported_range_error"], r["true_range"]) for r in rows
                                               if r["reported_range_error"] is not None]),
            "false_obstacles": {"total": int(sum(false)), "per_frame": float(np.mean(false)) if false else None,
                                "max_in_a_frame": int(max(false, default=0)),
                                "reported": int(sum(frame["reported"] for frame in self.frames))},
        }
