"""Component-level metrics of the SegmentMeIfYouCan (SMIYC) benchmark: sIoU, PPV and component F1.

Pixel AP says little about whether each obstacle was found as an object; the benchmark therefore also
scores connected components. Everything here follows the benchmark's own evaluation code
(road-anomaly-benchmark, `metrics/instance_segmentation.py`, as of its last change in October 2021) and
gives the numbers it gives, only faster (one table of pixel counts per frame instead of a pass over
the image per component).

Per frame (labels: 0 in-distribution, 1 anomaly / obstacle, 255 void):

    gt, pred = instances(mask, label, *TRACK_SIZES["smiyc-obstacle"])     # or instances_from_score
    tally.add(segment_metrics(gt, pred))                                   # tally = ComponentTally()

and `tally.summary()` once at the end (a plain dict for JSON). The API:

- `instances(mask, label, min_pred_size=0, min_gt_size=0) -> (gt_ids, pred_ids)`: the instance maps of
  one frame from an already thresholded mask; `instances_from_score(score, label, threshold, ...)` builds
  the mask as the benchmark does (`score > threshold`).
- `segment_metrics(gt_ids, pred_ids, thresholds=SIOU_THRESHOLDS) -> Segments`: per component values and
  tp / fn / fp at every sIoU threshold.
- `ComponentTally`: sums over frames, `summary()`.
- `TRACK_SIZES`: the size filters of the two SMIYC tracks; `benchmark_sizes(dataset)` those of any dataset
  (the generic `SegEval` sizes, `GENERIC_SIZES`, where there is no track).
- `best_f1_threshold(scores_neg, scores_pos, weight_neg=1.0, weight_pos=1.0) -> PixelF1`: the benchmark's
  default threshold (the best pixel F1), for the benchmark's `score > threshold`.

Per ground-truth component K, with P(K) the predicted components that touch K:
sIoU(K) = |K ∩ P(K)| / |(K ∪ P(K)) \\ A(K)|, where A(K) are the pixels of P(K) that lie on other
ground-truth components (a prediction covering two objects does not dilute either object's score).
Per predicted component k: PPV(k) = |k ∩ gt| / |k| (its precision), and sIoU_pred(k), the sIoU with the
roles swapped. At a threshold t: tp = #K with sIoU >= t, fn = #K with sIoU < t, fp = #k with PPV < t.
Until the end of September 2021 the benchmark counted fp with sIoU_pred < t and tabulated mean sIoU_pred;
since then it counts fp with PPV < t and tabulates mean PPV (`prec_pred`). `summary()` gives both means.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np

from hypood_ros.errors import HypoodError
from hypood_ros.evaluation.metrics import IGNORE, ranked_counts

#: The sIoU thresholds of the benchmark: np.linspace(0.25, 0.75, 11), kept as linspace makes them. Its
#: 0.6 is 0.6000000000000001, so a component with sIoU exactly 3/5 is a miss at "0.6", as in the benchmark.
SIOU_THRESHOLDS = np.linspace(0.25, 0.75, 11)

#: (smallest predicted component, smallest ground-truth component) in pixels of the two SMIYC tracks, from
#: the benchmark's configs `SegEval-AnomalyTrack` (500, 100) and `SegEval-ObstacleTrack` (50, 10). Smaller
#: predicted components are dropped; smaller ground-truth components become void (they count nowhere).
TRACK_SIZES: Dict[str, Tuple[int, int]] = {"smiyc-anomaly": (500, 100), "smiyc-obstacle": (50, 10)}
#: The benchmark's config of each track's sizes, and its generic config `SegEval` (500, 100), the sizes of
#: datasets without a track of their own (Road Anomaly, Fishyscapes).
TRACK_CONFIGS: Dict[str, str] = {"smiyc-anomaly": "SegEval-AnomalyTrack", "smiyc-obstacle": "SegEval-ObstacleTrack"}
GENERIC_SIZES: Tuple[int, int] = (500, 100)


def benchmark_sizes(dataset: str) -> Tuple[int, int, str]:
    """(smallest predicted, smallest ground-truth component, the benchmark config they come from) for a
    dataset name of `hypood eval`: its track's sizes, else the generic `SegEval` sizes."""
    if dataset in TRACK_SIZES:
        return (*TRACK_SIZES[dataset], TRACK_CONFIGS[dataset])
    return (*GENERIC_SIZES, "SegEval")


#: The thresholds named in the summary (tp_25, F1_50, ...), as in the benchmark's tables.
NAMED_THRESHOLDS = (0.25, 0.5, 0.75)


def _raster_order(ids: np.ndarray, count: int) -> np.ndarray:
    """Renumber components so that ids grow with the position of each component's first pixel in row-major
    order, the numbering of scipy.ndimage.label that the benchmark's per-component arrays follow.

    OpenCV's Wu algorithm numbers this way already (checked in O(pixels): the running maximum of the ids
    then never jumps by more than one); other OpenCV algorithms number by 2x2 blocks, hence the fallback.
    """
    flat = ids.ravel()
    if not np.any(np.diff(np.maximum.accumulate(flat), prepend=0) > 1):
        return ids
    labels, first = np.unique(flat, return_index=True)
    labels, first = labels[labels > 0], first[labels > 0]
    lut = np.zeros(count, ids.dtype)
    lut[labels[np.argsort(first)]] = np.arange(1, labels.size + 1, dtype=ids.dtype)
    return lut[ids]


def _components(binary: np.ndarray) -> Tuple[np.ndarray, int]:
    """8-connected components (the benchmark's 3x3 structure): int32 ids, 0 = background; and the count of
    ids including the background."""
    import cv2

    count, ids = cv2.connectedComponentsWithAlgorithm(np.ascontiguousarray(binary, np.uint8), 8, cv2.CV_32S,
                                                      cv2.CCL_WU)
    return _raster_order(ids, count), count


def _compact(keep: np.ndarray) -> np.ndarray:
    """Lookup table that renumbers the kept ids 1, 2, ... in their order and maps the others to 0."""
    return np.where(keep, np.cumsum(keep), 0).astype(np.int32)


def instances(mask: np.ndarray, label: np.ndarray, min_pred_size: int = 0, min_gt_size: int = 0,
              gt_instances: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Ground-truth and predicted instance ids of one frame, over the pixels of the evaluated region.

    `mask` (HxW, nonzero = predicted) is taken as it is, so a node's cleaned mask can be measured too;
    `label` is HxW (0, 1 = anomaly, 255 = void). In the benchmark's order: predicted pixels on void are
    dropped before labelling (a prediction across a void strip is two components); predicted components of
    fewer than `min_pred_size` pixels are dropped; ground-truth components of fewer than `min_gt_size` pixels
    become void, together with every prediction pixel on them (the rest of such a prediction stays, with
    its size measured before). Like the benchmark, the background (all pixels not labelled 1) is treated as
    component 0 by the size rule: in a frame with fewer than `min_gt_size` such pixels it becomes void too.

    Returns two int32 arrays of equal length, the region's pixels in row-major order: ids 1, 2, ... of
    ground-truth and predicted components (numbered by first pixel, as scipy does), 0 where there is none.

    `gt_instances` (HxW integer ids, 0 = none, non-zero exactly where label is 1) gives the ground-truth
    components instead of the connected components of label == 1: objects a scene generator knows one by
    one, each its own component where two touch. The same rules apply to them, and their ids are kept.
    """
    mask, label = np.asarray(mask), np.asarray(label)
    if label.ndim != 2 or mask.shape != label.shape:
        raise HypoodError(f"mask {mask.shape} and label {label.shape} must be the same HxW")
    if gt_instances is None:
        gt_ids, gt_count = _components(label == 1)
    else:
        gt_ids = np.asarray(gt_instances)
        if (gt_ids.shape != label.shape or not np.issubdtype(gt_ids.dtype, np.integer)
                or (gt_ids.size and gt_ids.min() < 0)):
            raise HypoodError(f"ground-truth instances must be {label.shape} integer ids >= 0")
        if not np.array_equal(gt_ids > 0, label == 1):
            raise HypoodError("ground-truth instances must cover exactly the pixels labelled 1")
        gt_ids = gt_ids.astype(np.int32)
        gt_count = int(gt_ids.max()) + 1
    pred_ids, pred_count = _components((mask != 0) & (label != IGNORE))
    keep_pred = np.bincount(pred_ids.ravel(), minlength=pred_count) >= min_pred_size
    small_gt = np.bincount(gt_ids.ravel(), minlength=gt_count) < min_gt_size
    region = (label < IGNORE) & ~small_gt[gt_ids]
    keep_pred[0] = False
    keep_gt = ~small_gt
    keep_gt[0] = False
    gt_lut = _compact(keep_gt) if gt_instances is None else np.where(keep_gt, np.arange(gt_count), 0).astype(np.int32)
    return gt_lut[gt_ids[region]], _compact(keep_pred)[pred_ids[region]]


def instances_from_score(score: np.ndarray, label: np.ndarray, threshold: float, min_pred_size: int = 0,
                         min_gt_size: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """`instances` of the mask score > threshold, the benchmark's rule (NaN scores are not predicted).

    The comparison is made in float64, so it is exact and the same under NumPy 1 and 2 (NumPy would
    otherwise round a Python float threshold to the scores' dtype); a threshold from `best_f1_threshold`
    is a value of the scores' dtype, where both agree.
    """
    return instances(np.asarray(score, np.float64) > float(threshold), label, min_pred_size, min_gt_size)


@dataclass(frozen=True, eq=False)
class Segments:
    """One frame's components: per ground-truth component (sIoU, size in pixels), per predicted component
    (PPV, sIoU_pred, size), each in id order; and per threshold of `thresholds` the counts tp, fn and fp."""
    siou_gt: np.ndarray
    size_gt: np.ndarray
    ppv: np.ndarray
    siou_pred: np.ndarray
    size_pred: np.ndarray
    thresholds: np.ndarray
    tp: np.ndarray
    fn: np.ndarray
    fp: np.ndarray


def _sum_by(index: np.ndarray, values: np.ndarray, length: int) -> np.ndarray:
    """Sums of integer `values` per `index` in 0 .. length-1 (exact: the sums stay far below 2**53)."""
    return np.bincount(index, weights=values, minlength=length).astype(np.int64)


def segment_metrics(gt_ids: np.ndarray, pred_ids: np.ndarray,
                    thresholds: np.ndarray = SIOU_THRESHOLDS) -> Segments:
    """sIoU, PPV, sIoU_pred and tp / fn / fp of one frame from its instance ids (any equal shapes, 0 = none).

    A contingency table of pixel counts per (ground-truth id, predicted id) answers everything. The
    benchmark's adjusted union of a ground-truth component K, |K| + |P(K)| - |K ∩ P(K)| - |A(K)|, is |K|
    plus the pixels of P(K) on background, because every pixel of P(K) lies on K, on another ground-truth
    component or on background; the same holds with the roles swapped. So only the table's margins
    (bincounts) and which of its inner cells are nonzero (the pairs that touch) are needed: the table
    is never made dense, whose size, (ground-truth ids) x (predicted ids), reaches gigabytes on noisy
    masks. Ids absent from the arrays are no components.
    """
    gt, pred = np.asarray(gt_ids).ravel(), np.asarray(pred_ids).ravel()
    if gt.shape != pred.shape:
        raise HypoodError(f"{gt.size} ground-truth ids but {pred.size} predicted ids")
    for ids in (gt, pred):
        if not np.issubdtype(ids.dtype, np.integer) or (ids.size and ids.min() < 0):
            raise HypoodError("instance ids must be integers >= 0")
    gt, pred = gt.astype(np.int64), pred.astype(np.int64)
    rows = int(gt.max()) + 1 if gt.size else 1
    cols = int(pred.max()) + 1 if pred.size else 1
    size_gt, size_pred = np.bincount(gt, minlength=rows)[1:], np.bincount(pred, minlength=cols)[1:]
    gt_alone = np.bincount(gt[pred == 0], minlength=rows)[1:]  # pixels of K under no prediction
    pred_alone = np.bincount(pred[gt == 0], minlength=cols)[1:]  # pixels of k on background
    both = (gt > 0) & (pred > 0)
    touch_gt, touch_pred = np.divmod(np.unique(gt[both] * cols + pred[both]) - cols - 1, cols)
    union_gt = size_gt + _sum_by(touch_gt, pred_alone[touch_pred], rows - 1)
    union_pred = size_pred + _sum_by(touch_pred, gt_alone[touch_gt], cols - 1)
    covered_gt = size_gt - gt_alone  # pixels of K under any prediction, i.e. under P(K)
    on_gt = size_pred - pred_alone  # pixels of k on any ground truth
    g, p = size_gt > 0, size_pred > 0
    siou_gt = covered_gt[g] / union_gt[g]
    ppv, siou_pred = on_gt[p] / size_pred[p], on_gt[p] / union_pred[p]
    t = np.asarray(thresholds, np.float64)
    tp = np.count_nonzero(siou_gt[:, None] >= t, axis=0)
    fp = np.count_nonzero(ppv[:, None] < t, axis=0)
    return Segments(siou_gt, size_gt[g], ppv, siou_pred, size_pred[p], t, tp, siou_gt.size - tp, fp)


def _ratio(num: float, den: float) -> Optional[float]:
    return num / den if den else None


class ComponentTally:
    """Component metrics of a whole dataset, summed frame by frame as the benchmark aggregates them.

    tp, fn and fp are summed per threshold over frames and F1 = 2tp / (2tp + fn + fp) is formed from the
    sums; F1_mean, tp_mean, fn_mean and fp_mean average over the thresholds. sIoU_gt, PPV and sIoU_pred
    are means over all components of all frames (a frame with many components weighs more), not over
    frames. Where the benchmark divides by zero this returns None: a mean with no component, and F1
    where 2tp + fn + fp == 0 (no ground-truth component and no false positive; then at every positive
    threshold).
    """

    def __init__(self, thresholds: np.ndarray = SIOU_THRESHOLDS) -> None:
        self.thresholds = np.asarray(thresholds, np.float64)
        self.tp, self.fn, self.fp = (np.zeros(self.thresholds.size, np.int64) for _ in range(3))
        self.sums = {"sIoU_gt": 0.0, "PPV": 0.0, "sIoU_pred": 0.0}
        self.gt_components = self.pred_components = self.frames = 0

    def add(self, frame: Segments) -> None:
        if not np.array_equal(frame.thresholds, self.thresholds):
            raise HypoodError("a frame was measured at other sIoU thresholds than the tally's")
        self.tp += frame.tp
        self.fn += frame.fn
        self.fp += frame.fp
        for key, values in (("sIoU_gt", frame.siou_gt), ("PPV", frame.ppv), ("sIoU_pred", frame.siou_pred)):
            self.sums[key] += float(np.sum(values))
        self.gt_components += frame.siou_gt.size
        self.pred_components += frame.ppv.size
        self.frames += 1

    def merge(self, other: "ComponentTally") -> None:
        """Add another tally's frames (another bag of the same measurement)."""
        if not np.array_equal(other.thresholds, self.thresholds):
            raise HypoodError("tallies at different sIoU thresholds cannot be merged")
        self.tp += other.tp
        self.fn += other.fn
        self.fp += other.fp
        for key in self.sums:
            self.sums[key] += other.sums[key]
        self.gt_components += other.gt_components
        self.pred_components += other.pred_components
        self.frames += other.frames

    def summary(self) -> Dict[str, object]:
        """Plain numbers (JSON-ready): sIoU_gt, PPV, sIoU_pred; tp/fn/fp/F1 at 0.25, 0.5 and 0.75 (keys
        tp_25 ... F1_75) and their means over all thresholds (tp_mean ... F1_mean); component and frame
        counts. None where a value is undefined (see the class)."""
        tp, fn, fp = (counts.tolist() for counts in (self.tp, self.fn, self.fp))
        f1 = [_ratio(2 * a, 2 * a + b + c) for a, b, c in zip(tp, fn, fp)]
        count = len(f1)
        out: Dict[str, object] = {
            "sIoU_gt": _ratio(self.sums["sIoU_gt"], self.gt_components),
            "PPV": _ratio(self.sums["PPV"], self.pred_components),
            "sIoU_pred": _ratio(self.sums["sIoU_pred"], self.pred_components)}
        for t in NAMED_THRESHOLDS:
            for i in np.flatnonzero(self.thresholds == t).tolist():
                name = round(100 * t)
                out.update({f"tp_{name}": tp[i], f"fn_{name}": fn[i], f"fp_{name}": fp[i], f"F1_{name}": f1[i]})
        out.update({"tp_mean": _ratio(sum(tp), count), "fn_mean": _ratio(sum(fn), count),
                    "fp_mean": _ratio(sum(fp), count),
                    "F1_mean": None if None in f1 else _ratio(sum(f1), count),
                    "gt_components": self.gt_components, "pred_components": self.pred_components,
                    "frames": self.frames})
        return out


class PixelF1(NamedTuple):
    """A score threshold for the mask score > threshold, and the pixel F1 of that mask."""
    threshold: float
    f1: float


def best_f1_threshold(scores_neg: np.ndarray, scores_pos: np.ndarray, weight_neg: float = 1.0,
                      weight_pos: float = 1.0) -> PixelF1:
    """The score threshold with the best pixel F1, the benchmark's threshold when none is given.

    Scores of in-distribution (`scores_neg`) and OOD (`scores_pos`) pixels, void left out; the weights
    count each pixel as that many (`PixelSample` weights its kept pixels by seen / kept). F1 is highest
    for the mask score >= v at one of the scores v (the highest such v on ties). The mask is made as
    score > threshold, so the threshold returned is the next value below v in the scores' float dtype:
    score > threshold is then exactly score >= v, and the returned F1 is the F1 that mask gets on these
    pixels. (The benchmark reads its threshold off a binned curve, the lower edge of a score bin, and
    then applies `>`; this is the exact version of that.)
    """
    neg, pos = np.asarray(scores_neg).ravel(), np.asarray(scores_pos).ravel()
    if neg.size == 0 or pos.size == 0:
        raise HypoodError("the best F1 threshold needs both OOD and in-distribution pixels")
    if not (np.isfinite(neg).all() and np.isfinite(pos).all()):
        raise HypoodError("scores contain NaN or infinity")
    dtype = np.result_type(neg, pos)
    dtype = dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)
    values, tps, fps = ranked_counts(neg, pos, weight_neg, weight_pos)
    f1 = 2 * tps / (tps + fps + tps[-1])  # tps[-1]: every OOD pixel; fn = tps[-1] - tps
    best = int(np.argmax(f1))
    below = np.nextafter(dtype.type(values[best]), dtype.type(-np.inf))
    return PixelF1(float(below), float(f1[best]))
