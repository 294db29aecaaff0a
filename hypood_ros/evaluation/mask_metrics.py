"""The node's obstacle mask on a benchmark, measured as the SMIYC benchmark measures a mask.

Pixel AP / AUROC / FPR95 say how well a score ranks pixels; the node publishes one mask. That mask is
made here per frame exactly as the node makes it (`pipeline.mask_region` and `pipeline.obstacle_mask`:
score > threshold, inside the region of interest formed from the predicted class ids at label size, then
the opening and the minimum area) and measured three ways:

- components, as the benchmark's `SegEval` metrics (`components.instances` with the dataset's size
  filters, `segment_metrics`, summed over the frames by `ComponentTally`): sIoU (gt), PPV, component F1
  at the sIoU thresholds 0.25 / 0.5 / 0.75 and its mean over the thresholds 0.25 ... 0.75, tp / fn / fp;
- pixels (void left out): OOD pixels flagged / OOD pixels (recall) and in-distribution pixels flagged /
  in-distribution pixels (false-positive rate), over the whole picture and inside the region only (what
  the mask costs where it acts);
- the ground-truth components (after the size filter) that lie mostly outside the region, i.e. fewer
  than half of their pixels inside it: the mask misses them at any threshold.

A dataset has no camera_info or pose, so the geometry regions (`corridor`, `road_corridor`) fall back to
the road region, as the node does without a corridor. Without a threshold the benchmark's own default is
used: the best pixel F1 of the mask score over the dataset's pixels (`best_threshold`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from hypood_ros.defaults import default
from hypood_ros.evaluation.components import (
    ComponentTally,
    PixelF1,
    benchmark_sizes,
    best_f1_threshold,
    instances,
    segment_metrics,
)
from hypood_ros.evaluation.metrics import IGNORE, PixelSample
from hypood_ros.pipeline import PipelineConfig, mask_region, mask_score, obstacle_mask
from hypood_ros.roi import GEOMETRY_MODES

#: `MaskSpec.source` of a threshold chosen on the dataset itself.
BEST_F1 = "best pixel F1 of the score on this dataset (the benchmark's default)"


@dataclass(frozen=True)
class MaskSpec:
    """The obstacle mask to measure: the node's mask parameters and its threshold.

    threshold None: the best pixel F1 threshold of `score` on the dataset (a second pass over it).
    source: where the threshold came from, for the tables. notes: lines the tables carry beside the
    numbers (the caller's; `mask_notes` adds the ones that follow from the values).
    """

    score: str = default("score")
    threshold: Optional[float] = None
    source: str = BEST_F1
    roi: str = default("roi")
    roi_margin: int = default("roi_margin")
    roi_drop_known: bool = default("roi_drop_known")
    local_contrast: float = default("local_contrast")
    opening: int = default("opening")
    min_area: int = default("min_area")
    notes: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.config(0.0 if self.threshold is None else self.threshold)  # the node's own checks of each value

    def config(self, threshold: float) -> PipelineConfig:
        """The pipeline config whose mask this is, at `threshold`."""
        return PipelineConfig(score=self.score, threshold=threshold, roi=self.roi, roi_margin=self.roi_margin,
                              roi_drop_known=self.roi_drop_known, local_contrast=self.local_contrast,
                              opening=self.opening, min_area=self.min_area)


def mask_notes(spec: MaskSpec) -> List[str]:
    """The spec's notes and the one its region implies on a dataset (no camera: no corridor)."""
    notes = list(spec.notes)
    if spec.roi in GEOMETRY_MODES:
        notes.append(f"roi {spec.roi} needs camera_info and the camera pose, which a dataset does not have: the road "
                     "region stands in for it, as in the node without a corridor")
    return notes


def threshold_values(score: np.ndarray, class_ids: np.ndarray, label: np.ndarray,
                     spec: MaskSpec) -> Tuple[np.ndarray, np.ndarray]:
    """(values, labels) the best pixel F1 threshold of `spec` is chosen on: the score over the picture, or with
    `local_contrast` what the mask thresholds, inside the region only (the rest void): outside it the
    contrast has no surroundings to be measured against."""
    if not spec.local_contrast:
        return score, label
    config = spec.config(0.0)
    region = mask_region(class_ids, config)
    values = mask_score(score, region, config)
    return values, (label if region is None else np.where(region, label, IGNORE).astype(label.dtype))


def best_threshold(sample: PixelSample) -> PixelF1:
    """The benchmark's default threshold from a dataset's pixel sample of the mask score: the best pixel F1
    over the whole picture (void left out), each kept pixel weighted as the sample weights it."""
    return best_f1_threshold(sample.values[False], sample.values[True], *sample.weights())


#: Pixel counts of the tally: OOD and in-distribution pixels (void left out) and those flagged, over the whole
#: picture and inside the region.
PIXEL_COUNTS = ("ood", "ood_flagged", "id", "id_flagged", "ood_region", "ood_region_flagged", "id_region",
                "id_region_flagged")


def _ratio(num: int, den: int) -> Optional[float]:
    return num / den if den else None


class MaskTally:
    """A mask's metrics over the frames of dataset `dataset` (its name gives the benchmark's size filters)."""

    def __init__(self, dataset: str) -> None:
        self.min_pred, self.min_gt, self.sizes_config = benchmark_sizes(dataset)
        self.components = ComponentTally()
        self.counts: Dict[str, int] = dict.fromkeys(PIXEL_COUNTS, 0)
        self.gt_outside = 0

    def measure(self, score: np.ndarray, class_ids: np.ndarray, label: np.ndarray, config: PipelineConfig) -> None:
        """One frame: the node's mask of `score` (HxW) under `config`, its region from the predicted train ids
        `class_ids` (HxW), against `label` (0 / 1 / 255)."""
        region = mask_region(class_ids, config)
        self.add(obstacle_mask(score, region, config), region, label)

    def add(self, mask: np.ndarray, region: Optional[np.ndarray], label: np.ndarray) -> None:
        """One frame's mask (nonzero = flagged) and the region it was limited to (None: the whole picture)."""
        gt, pred = instances(mask, label, self.min_pred, self.min_gt)
        self.components.add(segment_metrics(gt, pred))
        flagged = np.asarray(mask) != 0
        inside = np.ones(flagged.shape, bool) if region is None else np.asarray(region, bool)
        for name, cls in (("ood", 1), ("id", 0)):
            pixels = label == cls
            self.counts[name] += int(np.count_nonzero(pixels))
            self.counts[f"{name}_flagged"] += int(np.count_nonzero(pixels & flagged))
            self.counts[f"{name}_region"] += int(np.count_nonzero(pixels & inside))
            self.counts[f"{name}_region_flagged"] += int(np.count_nonzero(pixels & inside & flagged))
        if region is not None:  # the same ground-truth components, with the region as the "prediction"
            gt_ids, in_region = instances(inside, label, 0, self.min_gt)
            size = np.bincount(gt_ids)[1:]
            inside_size = np.bincount(gt_ids[in_region > 0], minlength=size.size + 1)[1:]
            self.gt_outside += int(np.count_nonzero(2 * inside_size < size))

    def merge(self, other: "MaskTally") -> None:
        """Add another tally's frames (another bag measured with the same sizes)."""
        self.components.merge(other.components)
        for name in self.counts:
            self.counts[name] += other.counts[name]
        self.gt_outside += other.gt_outside

    def summary(self) -> Dict[str, object]:
        """JSON-ready: `components` (`ComponentTally.summary`), `pixels` (the counts and the rates recall,
        fpr, recall_region, fpr_region; None where nothing was counted), `gt_outside_region`, `sizes`."""
        c = self.counts
        pixels: Dict[str, object] = dict(c)
        pixels.update(recall=_ratio(c["ood_flagged"], c["ood"]), fpr=_ratio(c["id_flagged"], c["id"]),
                      recall_region=_ratio(c["ood_region_flagged"], c["ood_region"]),
                      fpr_region=_ratio(c["id_region_flagged"], c["id_region"]))
        return {"components": self.components.summary(), "pixels": pixels, "gt_outside_region": self.gt_outside,
                "sizes": {"min_pred": self.min_pred, "min_gt": self.min_gt, "config": self.sizes_config}}


def mask_result(spec: MaskSpec, threshold: float, tally: MaskTally, dataset: str,
                best: Optional[PixelF1] = None) -> Dict[str, object]:
    """The `mask` entry of results.json: what mask was measured, and its metrics."""
    notes = mask_notes(spec)
    if tally.sizes_config == "SegEval":
        notes.append(f"{dataset} has no SMIYC track: components use the benchmark's generic SegEval sizes "
                     f"({tally.min_pred} px predicted, {tally.min_gt} px ground truth)")
    return {"score": spec.score, "threshold": threshold, "threshold_source": spec.source,
            "best_pixel_f1": None if best is None else best.f1, "roi": spec.roi, "roi_margin": spec.roi_margin,
            "roi_drop_known": spec.roi_drop_known, "local_contrast": spec.local_contrast, "opening": spec.opening,
            "min_area": spec.min_area,
            **tally.summary(), "notes": notes}


def _percent(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _rate(num: int, den: int) -> str:
    return f"{_percent(_ratio(num, den))} ({num} / {den})"


def mask_table(result: Dict[str, object]) -> List[str]:
    """The results.md section of `mask_result`."""
    r, comp, px = result, result["components"], result["pixels"]
    sizes = r["sizes"]
    region = "none (the whole picture)" if r["roi"] == "none" else (
        f"{r['roi']}, margin {r['roi_margin']} px, known road users {'taken out' if r['roi_drop_known'] else 'kept'}")
    f1 = "" if r["best_pixel_f1"] is None else f", pixel F1 {_percent(r['best_pixel_f1'])}%"
    if r.get("local_contrast"):
        region += (f"; thresholded: the score minus its local mean in the region (sigma {r['local_contrast']:g} x "
                   "the height)")
    lines = ["", f"## Obstacle mask: {r['score']} > {r['threshold']:.9g}", "",
             f"Made as the node makes it. Threshold: {r['threshold_source']}{f1}. Region: {region}. Opening "
             f"{r['opening']} px, minimum area {r['min_area']} px. Components as the benchmark's {sizes['config']} "
             f"computes them: predicted components under {sizes['min_pred']} px dropped, ground-truth components "
             f"under {sizes['min_gt']} px void.", "",
             "| sIoU gt (%) | PPV (%) | F1 25 (%) | F1 50 (%) | F1 75 (%) | mean F1 (%) | tp 25 | fn 25 | fp 25 |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {_percent(comp['sIoU_gt'])} | {_percent(comp['PPV'])} | {_percent(comp['F1_25'])} | "
             f"{_percent(comp['F1_50'])} | {_percent(comp['F1_75'])} | {_percent(comp['F1_mean'])} | "
             f"{comp['tp_25']} | {comp['fn_25']} | {comp['fp_25']} |", "",
             "| pixels | OOD flagged (recall, %) | in-distribution flagged (false positives, %) |", "|---|---:|---:|",
             f"| whole picture | {_rate(px['ood_flagged'], px['ood'])} | {_rate(px['id_flagged'], px['id'])} |",
             f"| inside the region | {_rate(px['ood_region_flagged'], px['ood_region'])} | "
             f"{_rate(px['id_region_flagged'], px['id_region'])} |", "",
             f"Ground-truth components: {comp['gt_components']}, of which {r['gt_outside_region']} lie mostly outside "
             f"the region (fewer than half their pixels inside); predicted components: {comp['pred_components']}; "
             f"frames: {comp['frames']}."]
    lines += [f"Note: {note}." for note in r["notes"]]
    return lines
