"""One frame through the whole chain: preprocess -> backend -> scores -> postprocess -> pictures.

ROS-free: the node, `hypood run` and calibration all drive this class.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import FrozenSet, Iterable, List, Optional, Sequence

import numpy as np
import torch

from hypood_ros.contrast import contrast_score
from hypood_ros.defaults import BY_NAME, check_value, default
from hypood_ros.defaults import OUTPUTS as OUTPUT_NAMES
from hypood_ros.errors import ConfigError
from hypood_ros.kernels import FusedArgs, fused_scores, reference_fused_scores
from hypood_ros.kernels.compile import KernelCompileError
from hypood_ros.postprocess import clean_mask, upsample
from hypood_ros.preprocess import check_rgb, preprocess
from hypood_ros.roi import GEOMETRY_MODES, ego_at, region_of_interest
from hypood_ros.runtimes.base import Backend
from hypood_ros.scores import (
    SCORE_RESOLUTIONS,
    ScoreInputs,
    SMLStats,
    class_max_native,
    compute_score,
    score_map,
    score_spec,
)
from hypood_ros.visualize import color_map, overlay

#: what a FramePipeline can return: the published outputs and the mask's region of interest
OUTPUTS: FrozenSet[str] = frozenset(OUTPUT_NAMES) | {"region"}
#: Scores the fused op computes in one pass; every other registry score goes through `compute_score`.
FUSED_SCORES = {"weighted_normalized_energy": "energy", "hyperspherical_llr": "llr"}


@dataclass(frozen=True)
class PipelineConfig:
    """The run-time settings of the frame pipeline; defaults from `hypood_ros.defaults`."""

    score: str = default("score")
    score_resolution: str = default("score_resolution")
    threshold: float = default("threshold")
    eta: float = default("eta")
    delta: float = default("delta")
    lam: float = default("lam")
    min_area: int = default("min_area")
    opening: int = default("opening")
    roi: str = default("roi")
    roi_margin: int = default("roi_margin")
    roi_drop_known: bool = default("roi_drop_known")
    local_contrast: float = default("local_contrast")
    overlay_alpha: float = default("overlay_alpha")
    outputs: FrozenSet[str] = field(default_factory=lambda: frozenset(OUTPUT_NAMES))

    def __post_init__(self) -> None:
        # every table field through the table's one check (type, finite, range, allowed values)
        for name in PIPELINE_FIELDS:
            object.__setattr__(self, name, check_value(BY_NAME[name], getattr(self, name)))
        # what the table cannot say: the set of outputs
        if isinstance(self.outputs, str) or not isinstance(self.outputs, Iterable):
            raise ConfigError(f"outputs must be a set of names, got {self.outputs!r}")
        object.__setattr__(self, "outputs", frozenset(self.outputs))
        unknown = self.outputs - OUTPUTS
        if unknown:
            raise ConfigError(f"unknown outputs {sorted(unknown)}; known: {sorted(OUTPUTS)}")

    def replace(self, **changes) -> "PipelineConfig":
        try:
            return dataclasses.replace(self, **changes)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None


#: The pipeline's fields that are table parameters (all but `outputs`), written once: the node and
#: `hypood run` build a PipelineConfig from these names.
PIPELINE_FIELDS = tuple(f.name for f in dataclasses.fields(PipelineConfig) if f.name != "outputs")


@dataclass
class FrameResult:
    """Camera-size outputs; an output not requested in the config is None."""

    labels: Optional[np.ndarray] = None  # uint8 HxW train ids
    color: Optional[np.ndarray] = None  # uint8 HxWx3 RGB
    score: Optional[np.ndarray] = None  # float32 HxW, higher = more OOD
    mask: Optional[np.ndarray] = None  # uint8 HxW, 0 or 255
    overlay: Optional[np.ndarray] = None  # uint8 HxWx3 RGB
    region: Optional[np.ndarray] = None  # bool HxW region of interest of the mask (None: the whole picture)
    #: the config's roi needed a corridor that was not given, so the road region stood in for it
    roi_fallback: bool = False


@dataclass
class ScoreMaps:
    """Class ids and scores of one batch, one entry per frame, on the backend's device.

    At `score_resolution = network` they are on the network grid (postprocess upsamples them); at `image`
    they are at each frame's own size already.
    """

    class_ids: List[torch.Tensor]  # uint8 [h,w] or [H,W]
    score: List[torch.Tensor]  # float32, same size


def mask_region(labels: np.ndarray, config: PipelineConfig, corridor: Optional[np.ndarray] = None,
                ego: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """The obstacle mask's region of interest for the predicted train ids `labels` (HxW) under `config`
    (roi, roi_margin, roi_drop_known; the geometry modes fall back to the road without `corridor`), the
    vehicle's own pixels (`ego`, bool at any size) left out."""
    return region_of_interest(config.roi, labels, corridor, config.roi_margin, config.roi_drop_known, ego)


def mask_score(score: np.ndarray, region: Optional[np.ndarray], config: PipelineConfig) -> np.ndarray:
    """What the threshold applies to: the score, or with `local_contrast` the score against its surroundings
    inside `region` (`hypood_ros.contrast`). Calibration thresholds this same value."""
    return contrast_score(score, region, config.local_contrast)


def obstacle_mask(score: np.ndarray, region: Optional[np.ndarray], config: PipelineConfig) -> np.ndarray:
    """The node's obstacle mask, uint8 0/255: `mask_score` > threshold, inside `region` (None: everywhere), then
    the opening and the minimum area of `config`. `hypood eval` measures this same mask."""
    return clean_mask(mask_score(score, region, config) > config.threshold, region, config.opening,
                      config.min_area)


def _fused_args(outputs, head, config: PipelineConfig, size=None) -> FusedArgs:
    """The fused op's arguments for one frame's network outputs (UEM logits only for the LLR)."""
    uem = outputs["uem_logits"] if config.score == "hyperspherical_llr" else None
    return FusedArgs(outputs["embedding"], outputs["seg_logits"], head, eta=config.eta, uem_logits=uem, lam=config.lam,
                     out_size=size)


class FramePipeline:
    def __init__(self, backend: Backend, config: Optional[PipelineConfig] = None,
                 sml_stats: Optional[SMLStats] = None, ego_mask: Optional[np.ndarray] = None) -> None:
        """`ego_mask`: bool, the pixels of the vehicle itself (any size; `hypood_ros.roi.load_ego_mask`)."""
        self.backend = backend
        self.sml_stats = sml_stats
        self.ego_mask = ego_mask
        self._ego_sized: dict = {}  # the ego mask at each frame size met (resized once, not per frame)
        self._config = config or PipelineConfig()
        self._check_supported(self._config)
        self._lock = threading.Lock()
        self._fused = fused_scores  # replaced by the registry's reference if the CUDA kernel cannot load
        self.classes = backend.classes
        self._lut = self.classes.lut()

    @property
    def config(self) -> PipelineConfig:
        return self._config

    @property
    def input_size(self):
        return tuple(self.backend.input_shape[2:])

    def _check_supported(self, config: PipelineConfig) -> None:
        if score_spec(config.score).needs_sml and self.sml_stats is None:
            raise ConfigError(f"score {config.score!r} needs SML statistics, none were given")

    def update(self, **changes) -> PipelineConfig:
        """Validated run-time change; the next frame sees the whole new config or none of it."""
        new = self._config.replace(**changes)
        self._check_supported(new)
        with self._lock:
            self._config = new
        return new

    @torch.inference_mode()
    def infer(self, frames: Sequence[np.ndarray], config: Optional[PipelineConfig] = None) -> ScoreMaps:
        """Scores of `frames` (any sizes: each is resized to the network input on its own) in as few forward
        passes as the backend allows: one for a dynamic batch; runs of its B, the last padded with copies of
        its last frame, for a fixed-batch graph or engine (B = 1: one pass per frame)."""
        config = config or self._config
        smallest, largest = self.backend.batch_range
        step = largest or max(len(frames), 1)
        maps = ScoreMaps([], [])
        for start in range(0, len(frames), step):
            part = list(frames[start:start + step])
            padding = [part[-1]] * max(smallest - len(part), 0)
            # scores are taken before the next run: fixed-buffer backends overwrite their outputs
            outputs = self.backend.run(self._batch(part + padding))
            if config.score_resolution == "network":
                class_ids, score = self._network_scores(outputs, config)
                maps.class_ids.extend(class_ids[:len(part)])
                maps.score.extend(score[:len(part)])
                continue
            for i, frame in enumerate(part):
                one = {name: t[i:i + 1] for name, t in outputs.items()}
                class_ids, score = self._image_scores(one, frame.shape[:2], config)
                maps.class_ids.append(class_ids[0])
                maps.score.append(score[0])
        return maps

    def _batch(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """Frames of one size go up as one batch; frames of different sizes are resized one by one."""
        if len({f.shape for f in frames}) <= 1:
            return preprocess(frames, self.input_size, self.backend.device)
        return torch.cat([preprocess([f], self.input_size, self.backend.device) for f in frames])

    def _network_scores(self, outputs, config: PipelineConfig):
        """`network`: the score on the network grid [B,h,w] (upsampled per frame in `_finish`)."""
        head = self.backend.head
        if config.score in FUSED_SCORES:
            fused = self._fused(_fused_args(outputs, head, config))
            return fused.class_ids, getattr(fused, FUSED_SCORES[config.score])
        inputs = ScoreInputs(outputs["seg_logits"], outputs["embedding"], head, outputs["uem_logits"], self.sml_stats)
        score = compute_score(config.score, inputs, eta=config.eta, delta=config.delta, lam=config.lam)
        return outputs["seg_logits"].argmax(dim=1).to(torch.uint8), score

    def _image_scores(self, outputs, size, config: PipelineConfig):
        """`image`: one frame's score and class ids at its own size [1,H,W] (see scores.SCORE_RESOLUTIONS).

        On CUDA the fused scores sample the network outputs per output pixel in the kernel; elsewhere the
        registry computes the same values in row bands.
        """
        head = self.backend.head
        size = (int(size[0]), int(size[1]))
        if config.score in FUSED_SCORES and outputs["seg_logits"].is_cuda:
            fused = self._fused(_fused_args(outputs, head, config, size))
            return fused.class_ids, getattr(fused, FUSED_SCORES[config.score])
        inputs = ScoreInputs(outputs["seg_logits"], outputs["embedding"], head, outputs["uem_logits"], self.sml_stats)
        score, class_ids = score_map(config.score, inputs, size, "image", eta=config.eta, delta=config.delta,
                                     lam=config.lam)
        return class_ids, score

    def _ego_for(self, shape) -> Optional[np.ndarray]:
        if self.ego_mask is None:
            return None
        if shape not in self._ego_sized:
            self._ego_sized[shape] = ego_at(self.ego_mask, shape)
        return self._ego_sized[shape]

    def warm_up(self, frames: int = 1) -> Optional[str]:
        """One blank frame through the whole chain before the first real one (allocation, kernel loading), and
        a batch of `frames` blank frames through it when more are expected at once (many cameras).

        If the fused CUDA kernel cannot be loaded, later frames use the scores registry instead (the same
        results, slower) and the reason comes back as a one-line warning; any other failure raises.
        """
        frame = np.zeros((*self.input_size, 3), dtype=np.uint8)
        warning = None
        try:  # the fused op whatever the current score and resolution (both can change at run time)
            for resolution in SCORE_RESOLUTIONS:
                self.infer([frame], self._config.replace(score="weighted_normalized_energy",
                                                         score_resolution=resolution))
        except KernelCompileError as exc:
            self._fused = reference_fused_scores
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warning = f"fused CUDA kernel unavailable ({reason}); using the torch reference of the scores instead"
        self.process_batch([frame] * max(frames, 1))
        if torch.device(self.backend.device).type == "cpu":  # built here, not on the first frame with a class border
            class_max_native.library()
        return warning

    def process(self, frame: np.ndarray, corridor: Optional[np.ndarray] = None) -> FrameResult:
        return self.process_batch([frame], None if corridor is None else [corridor])[0]

    def process_batch(self, frames: Sequence[np.ndarray],
                      corridors: Optional[Sequence[Optional[np.ndarray]]] = None) -> List[FrameResult]:
        """`corridors`: per frame, the corridor ahead (bool, the frame's size) for the geometry `roi` modes."""
        config = self._config  # one consistent snapshot per batch
        frames = [check_rgb(f) for f in frames]
        corridors = list(corridors) if corridors is not None else [None] * len(frames)
        maps = self.infer(frames, config)
        return [self._finish(frame, maps.score[i], maps.class_ids[i], config, corridors[i])
                for i, frame in enumerate(frames)]

    def _finish(self, frame: np.ndarray, score: torch.Tensor, class_ids: torch.Tensor,
                config: PipelineConfig, corridor: Optional[np.ndarray] = None) -> FrameResult:
        want = config.outputs
        score_np, labels = upsample(score, class_ids, frame.shape[:2])
        result = FrameResult()
        if "labels" in want:
            result.labels = labels
        if "color" in want:
            result.color = color_map(labels, self._lut)
        if "score" in want:
            result.score = score_np
        if want & {"mask", "overlay", "region"}:
            if corridor is not None and corridor.shape != labels.shape:
                raise ConfigError(f"corridor is {corridor.shape[1]}x{corridor.shape[0]}, the frame "
                                  f"{labels.shape[1]}x{labels.shape[0]}")
            result.region = mask_region(labels, config, corridor, self._ego_for(labels.shape))
            result.roi_fallback = config.roi in GEOMETRY_MODES and corridor is None
        if want & {"mask", "overlay"}:
            mask = obstacle_mask(score_np, result.region, config)
            if "mask" in want:
                result.mask = mask
            if "overlay" in want:
                result.overlay = overlay(frame, mask, config.overlay_alpha)
        return result
