"""Threshold calibration on in-distribution data: flag at most a target fraction of ID pixels *inside the
region of interest* of the mask (`roi`), where obstacles matter.

Exact, with bounded memory: a first pass counts the pixels of all frames, P (frames are decoded twice,
inference runs once), which bounds the region's pixel count N. The kmax + 1 largest region scores are
kept, kmax = floor(target * P) >= k = floor(target * N); the threshold is the (k+1)-th largest, so
`score > threshold` flags at most k region pixels (fewer only when scores tie there).
The fraction is of raw thresholded pixels at camera resolution inside the region, before opening and
min-area (which only remove flagged pixels). The scores are the pipeline's, at its `score_resolution`; the
params file records that resolution, the region and the input size with the threshold, since the
threshold holds for those only.
"""
from __future__ import annotations

import datetime
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, Optional, Tuple

import numpy as np

from hypood_ros.errors import ConfigError, HypoodError


@dataclass
class Calibration:
    threshold: float
    target: float
    flagged_fraction: float
    pixels: int  # pixels the fraction is of: those inside the region of interest
    frames: int
    roi: str = "none"
    total_pixels: int = 0  # every pixel of the frames (0: not counted)


class TopScores:
    """The `keep` largest values seen so far (memory: `keep` floats, merged per frame)."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.values = np.empty(0, np.float32)

    def add(self, scores: np.ndarray) -> None:
        flat = np.asarray(scores, np.float32).ravel()
        if flat.size > self.keep:
            flat = np.partition(flat, flat.size - self.keep)[-self.keep:]
        merged = np.concatenate([self.values, flat])
        if merged.size > self.keep:
            merged = np.partition(merged, merged.size - self.keep)[-self.keep:]
        self.values = merged


def _top_for(target: float, total_pixels: int) -> TopScores:
    """The kept largest scores for a target fraction of at most `total_pixels` pixels (checks both)."""
    if not 0.0 < target < 1.0:
        raise ConfigError(f"target fraction must be in (0, 1), got {target}")
    if total_pixels <= 0:
        raise HypoodError("no usable in-distribution pixels to calibrate on")
    return TopScores(int(math.floor(target * total_pixels)) + 1)


def _threshold(top: TopScores, pixels: int, target: float) -> Tuple[float, float]:
    """(threshold, fraction flagged) for `pixels` scored pixels: the (k+1)-th largest, k = floor(target * pixels)."""
    ranked = np.sort(top.values)[::-1]
    threshold = float(ranked[min(int(math.floor(target * pixels)), ranked.size - 1)])
    return threshold, int((ranked > threshold).sum()) / pixels


def _check_seen(total: int, seen: int) -> None:
    if seen != total:
        raise HypoodError(f"calibration data changed between passes ({total} then {seen} pixels)")


def threshold_for_fraction(score_maps: Iterable[np.ndarray], total_pixels: int, target: float) -> Calibration:
    """score_maps must hold exactly `total_pixels` values in all; they are consumed once."""
    top = _top_for(target, total_pixels)
    seen = frames = 0
    for scores in score_maps:
        top.add(scores)
        seen += np.size(scores)
        frames += 1
    _check_seen(total_pixels, seen)
    threshold, flagged = _threshold(top, total_pixels, target)
    return Calibration(threshold, target, flagged, total_pixels, frames)


def calibrate(pipeline, frames: Callable[[], Iterator[np.ndarray]], target: float) -> Calibration:
    """`frames` is called twice: once to count pixels, once to score them with the pipeline's score and
    region of interest (`pipeline.config.roi`; the geometry modes need a camera and are refused). The
    values ranked are what the mask thresholds (`pipeline.mask_score`: with `local_contrast`, the score
    against its surroundings)."""
    from hypood_ros.pipeline import mask_score
    from hypood_ros.roi import GEOMETRY_MODES

    roi = pipeline.config.roi
    if roi in GEOMETRY_MODES:
        raise ConfigError(f"calibration has no camera geometry for roi {roi!r}: calibrate with roi 'road' (its "
                          "threshold is the one for road_corridor too; the corridor only narrows the region) or "
                          "'none'")
    total = sum(int(f.shape[0]) * int(f.shape[1]) for f in frames())
    top = _top_for(target, total)  # the region holds at most `total` pixels
    pipeline.update(outputs={"score", "region"})  # nothing else is needed here
    inside = seen = count = 0
    for frame in frames():
        result = pipeline.process(frame)
        values = mask_score(result.score, result.region, pipeline.config)
        scores = values if result.region is None else values[result.region]
        top.add(scores)
        inside += scores.size
        seen += result.score.size
        count += 1
    _check_seen(total, seen)
    if inside == 0:
        raise HypoodError(f"the region of interest ({roi}) was empty in every frame: no pixels to calibrate on "
                          "(is the model's road class found in these frames? roi 'none' calibrates on the whole "
                          "picture)")
    threshold, flagged = _threshold(top, inside, target)
    return Calibration(threshold, target, flagged, inside, count, roi, total)


def write_params(path: str | os.PathLike, result: Calibration, config, source: str, model: str,
                 input_hw: Optional[Tuple[int, int]] = None, mask: bool = False) -> Path:
    """A params YAML for the node; provenance in comments (the node only reads ros__parameters).

    A threshold holds for the network input size and the region of interest it was calibrated at (the
    scores of a resized frame differ; the fraction is of the region's pixels), so both go into the file
    with it. mask=True also writes the config's opening and min_area (a model's shipped mask)."""
    path = Path(path)
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    lines = [
        "# Threshold calibrated by `hypood calibrate`",
        f"#   data: {source}",
        f"#   model: {model}",
        f"#   frames: {result.frames}, pixels inside the region of interest ({result.roi}): {result.pixels}"
        + (f" of {result.total_pixels}" if result.total_pixels else ""),
        f"#   target fraction of the region's ID pixels flagged: {result.target}; flagged at this threshold: "
        f"{result.flagged_fraction:.6g}",
        "#   (raw thresholded pixels inside the region, before opening / min_area)"
        + (f"; thresholded: the score minus its local mean there (local_contrast {float(config.local_contrast):g})"
           if config.local_contrast else ""),
        f"#   date: {stamp}",
        "/**:",
        "  ros__parameters:",
        f"    score: \"{config.score}\"",
        f"    score_resolution: \"{config.score_resolution}\"",
        f"    threshold: {result.threshold!r}",
        f"    eta: {float(config.eta)!r}",
        f"    lam: {float(config.lam)!r}",
        f"    delta: {float(config.delta)!r}",
        f"    roi: \"{config.roi}\"",
        f"    roi_margin: {int(config.roi_margin)}",
        f"    roi_drop_known: {str(bool(config.roi_drop_known)).lower()}",
        f"    local_contrast: {float(config.local_contrast)!r}",
    ]
    if mask:
        lines += [f"    opening: {int(config.opening)}", f"    min_area: {int(config.min_area)}"]
    if input_hw is not None:
        lines += [f"    input_height: {int(input_hw[0])}", f"    input_width: {int(input_hw[1])}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_score_thresholds(path: str | os.PathLike, local_contrast: Optional[float] = None) -> Dict[str, float]:
    """Calibrated thresholds per score, from a YAML mapping `score: threshold` or a params file written above.

    The node takes a score's threshold from here when the score changes without a new threshold. A params
    file records the `local_contrast` its threshold holds for (none recorded: 0); given `local_contrast`,
    a file for another one is refused. A plain mapping records none and is taken as it is.
    """
    import yaml

    from hypood_ros.scores import SCORES

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read score thresholds {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"score thresholds {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), dict) \
            and "ros__parameters" in next(iter(data.values())):
        params = next(iter(data.values()))["ros__parameters"]
        recorded = params.get("local_contrast", 0.0)
        if local_contrast is not None and recorded != local_contrast:
            raise ConfigError(f"score thresholds {path}: its threshold holds for local_contrast {recorded!r}, not "
                              f"{local_contrast!r} (calibrate with --local-contrast {local_contrast!r})")
        data = {params.get("score"): params.get("threshold")}
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"score thresholds {path} must map score names to thresholds")
    out = {}
    for name, value in data.items():
        if name not in SCORES:
            raise ConfigError(f"score thresholds {path}: unknown score {name!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"score thresholds {path}: threshold of {name} must be a finite number, got {value!r}")
        out[name] = float(value)
    return out
