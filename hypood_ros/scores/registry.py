"""Every OOD score, defined once. Higher always means "more out-of-distribution".

Notation (docs/SCORES.md): f = M z (logits without bias), b = bias, z = embedding,
w_k = ||M_k|| (class-weight norm), u = UEM logits. All scores return float32 [B,h,w].
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import torch
import torch.nn.functional as F

from hypood_ros.errors import ConfigError
from hypood_ros.scores import class_max
from hypood_ros.scores.class_max import ClassMaxPlan
from hypood_ros.scores.inputs import ScoreInputs


def msp(x: ScoreInputs) -> torch.Tensor:
    """-max_k softmax(f+b)_k (thesis eq. 3.1)."""
    return -torch.softmax(x.full_logits(), dim=1).amax(dim=1)


def entropy(x: ScoreInputs) -> torch.Tensor:
    """Shannon entropy of softmax(f+b)."""
    log_p = torch.log_softmax(x.full_logits(), dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def max_logit(x: ScoreInputs) -> torch.Tensor:
    """-max_k (f+b)_k."""
    return -x.logit_max()[0]


def energy(x: ScoreInputs) -> torch.Tensor:
    """-logsumexp_k (f+b)_k at temperature 1."""
    return -torch.logsumexp(x.full_logits(), dim=1)


def sml(x: ScoreInputs) -> torch.Tensor:
    """-(max_k (f+b)_k - mu_c) / sigma_c with c the predicted class, statistics from ID data."""
    if x.sml_stats is None:
        raise ConfigError("score 'sml' needs per-class statistics "
                          "(fit them on in-distribution data with `hypood fit-sml`)")
    values, classes = x.logit_max()
    mean = x.sml_stats.mean.to(values.device)
    std = x.sml_stats.std.to(values.device)
    if mean.numel() != x.num_classes:
        raise ConfigError(f"SML statistics cover {mean.numel()} classes, logits have {x.num_classes}")
    classes = classes.long()  # uint8 from the winners' maps would index as a mask
    return -(values - mean[classes]) / std[classes]


def norm(x: ScoreInputs) -> torch.Tensor:
    """-||z||: the thesis' Norm-N baseline (smaller norm taken as more OOD)."""
    return -x.embedding_norm()


def normalized_max_logit(x: ScoreInputs) -> torch.Tensor:
    """-max_k f_k / ||z|| (thesis eq. 4.17); ||z|| > 0, so max_k (f_k / ||z||) = (max_k f_k) / ||z||, rounding too."""
    return torch.div(x.class_score_max(), x.embedding_norm()).neg_()  # in place: one frame-sized temporary fewer


def normalized_energy(x: ScoreInputs) -> torch.Tensor:
    """-logsumexp_k f_k / ||z||."""
    return -torch.logsumexp(x.class_scores().div_(x.embedding_norm().unsqueeze(1)), dim=1)


def class_weight_factors(x: ScoreInputs, eta: float) -> torch.Tensor:
    """w_k^(eta-1), shaped to broadcast over [B,K,h,w]."""
    w = x.head.weight_norm.float().to(x.logits.device)
    return w.pow(eta - 1.0).view(1, -1, 1, 1)


def weighted_normalized_energy(x: ScoreInputs, eta: float = 1.5) -> torch.Tensor:
    """-logsumexp_k (w_k^(eta-1) f_k / ||z||) (thesis eq. 4.23); eta=1 is normalized_energy."""
    # In place on the fresh f (same products and quotients, two K-channel temporaries fewer per band).
    scaled = x.class_scores().mul_(class_weight_factors(x, eta)).div_(x.embedding_norm().unsqueeze(1))
    return -torch.logsumexp(scaled, dim=1)


def delta_max_logit(x: ScoreInputs, delta: float = 0.0) -> torch.Tensor:
    """-max_k f_k / ||z||^(1-delta) (thesis eq. 5.7): delta=0 normalized max logit, delta=1 raw f."""
    return torch.div(x.class_score_max(), x.embedding_norm().pow(1.0 - delta)).neg_()


def uem_llr(x: ScoreInputs) -> torch.Tensor:
    """u_1 - u_0 - max_k (f+b)_k (UEM paper eq. 11, discriminative head)."""
    return x.uem_difference().sub_(x.logit_max()[0])  # the difference is a fresh tensor: subtract in place


def hyperspherical_llr(x: ScoreInputs, eta: float = 1.5, lam: float = 1.0) -> torch.Tensor:
    """u_1 - u_0 - lam * logsumexp_k (w_k^(eta-1) f_k / ||z||): LLR with hypersphere inlier evidence."""
    return x.uem_difference() + lam * weighted_normalized_energy(x, eta)


@dataclass(frozen=True)
class ScoreSpec:
    fn: Callable[..., torch.Tensor]
    needs_uem: bool = False
    needs_sml: bool = False
    params: Dict[str, float] = field(default_factory=dict)  # name -> default
    description: str = ""
    #: What the score reads of the classes: "all" (the K class maps), "max_logit" (only `logit_max()`:
    #: max_k (f+b)_k and its class), "max_class_score" (also `class_score_max()`: max_k f_k) or "none".
    #: All but "all" are computed at `image` from the winners' maps (scores/class_max.py).
    reads_classes: str = "all"


SCORES: Dict[str, ScoreSpec] = {
    "msp": ScoreSpec(msp, description="negative maximum softmax probability"),
    "entropy": ScoreSpec(entropy, description="softmax entropy"),
    "max_logit": ScoreSpec(max_logit, description="negative max logit", reads_classes="max_logit"),
    "energy": ScoreSpec(energy, description="negative logsumexp of the logits"),
    "sml": ScoreSpec(sml, needs_sml=True, description="standardized max logit", reads_classes="max_logit"),
    "norm": ScoreSpec(norm, description="negative embedding norm (Norm-N)", reads_classes="none"),
    "normalized_max_logit": ScoreSpec(normalized_max_logit, description="max logit on the hypersphere",
                                      reads_classes="max_class_score"),
    "normalized_energy": ScoreSpec(normalized_energy, description="energy on the hypersphere"),
    "weighted_normalized_energy": ScoreSpec(
        weighted_normalized_energy, params={"eta": 1.5}, description="class-weighted normalized energy"
    ),
    "delta_max_logit": ScoreSpec(delta_max_logit, params={"delta": 0.0}, description="norm re-introduction",
                                 reads_classes="max_class_score"),
    "uem_llr": ScoreSpec(uem_llr, needs_uem=True, description="UEM log-likelihood ratio", reads_classes="max_logit"),
    "hyperspherical_llr": ScoreSpec(
        hyperspherical_llr, needs_uem=True, params={"eta": 1.5, "lam": 1.0},
        description="LLR with normalized-energy inlier evidence",
    ),
}


def score_spec(name: str) -> ScoreSpec:
    try:
        return SCORES[name]
    except KeyError:
        raise ConfigError(f"unknown score {name!r}; known: {', '.join(SCORES)}") from None


def score_params(name: str, params: Dict[str, float]) -> Tuple[ScoreSpec, Dict[str, float]]:
    """The spec and the keyword arguments it takes, defaults filled; other keys are ignored."""
    spec = score_spec(name)
    return spec, {k: float(params.get(k, default)) for k, default in spec.params.items()}


def compute_score(name: str, inputs: ScoreInputs, **params: float) -> torch.Tensor:
    """Score `name` on `inputs`; parameters a score does not take (e.g. eta for msp) are ignored."""
    spec, kwargs = score_params(name, params)
    return spec.fn(inputs, **kwargs).float()


#: Where scores are evaluated, the one definition used by the pipeline, evaluation, calibration, training and
#: the fused op's reference.
#: `image` (default): the logits f+b, the two UEM logits and ||z|| (one channel) are interpolated bilinearly
#: (align_corners=False) to the output size first (`ScoreInputs.resized`), then the formula is applied per
#: output pixel; class ids are the argmax of the interpolated logits. This is the order of the UEM authors'
#: inference and loss (logits and UEM logits upsampled, then LLR per image pixel).
#: `network`: the formula is applied on the network grid and the score map is upsampled (bilinear; class ids
#: nearest): faster, and different where the max switches class between neighbouring cells.
SCORE_RESOLUTIONS = ("image", "network")

#: Output pixels (batch x rows x width) per band of `score_map` at `image` on the CPU: with K+3 interpolated
#: channels in float32 a band holds about 2**16 * (K+3) * 4 bytes (6 MB for K=19) per intermediate, whatever
#: the camera size. On a GPU the whole image is one band. 2^16 rather than 2^17: bands of 2^17 made the C
#: library hand the freed memory back and fault it in again for every band (tens of thousands of page faults
#: per 1080p frame on the development machine), and took 20-50% more CPU time (docs/PERFORMANCE.md).
BAND_PIXELS = 1 << 16

#: Output pixels per band for the scores that read only the maximum over classes (scores/class_max.py): they
#: hold a few channels per pixel, not K + 3, so frames up to 1920x1080 are one band (no merging of bands).
CLASS_MAX_BAND_PIXELS = 1 << 21


def check_score_resolution(resolution: str) -> str:
    if resolution not in SCORE_RESOLUTIONS:
        raise ConfigError(f"score_resolution must be one of {', '.join(SCORE_RESOLUTIONS)}, got {resolution!r}")
    return resolution


def _bands(inputs: ScoreInputs, size: Tuple[int, int], pixels: Optional[int] = None) -> List[Tuple[int, int]]:
    height, width = size
    if inputs.logits.is_cuda:
        return [(0, height)]
    rows = max(1, (pixels or BAND_PIXELS) // max(1, inputs.logits.shape[0] * width))
    return [(r, min(height, r + rows)) for r in range(0, height, rows)]


def score_maps(names: Sequence[str], inputs: ScoreInputs, size: Sequence[int], resolution: str = "image",
               **params: float) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
    """Scores `names` and the class ids at output `size`: ({name: float32 [B,H,W]}, uint8 [B,H,W]).

    The one place that decides the order of interpolation and scoring (see SCORE_RESOLUTIONS). At `image`
    the output is computed in bands of rows on the CPU (`BAND_PIXELS`), each band interpolating only the
    source rows it needs, so memory stays bounded at any camera size. Banded and whole-image results are
    identical for the interpolated inputs, the class ids and the max-based scores (uem_llr, max_logit, ...);
    softmax / logsumexp / pow agree to float32 rounding (PyTorch's CPU kernels round their last bit
    differently by tensor layout, as they do between thread counts). When every score asked for reads the
    classes only through their maximum (`ScoreSpec.reads_classes`), the image order is computed from the
    winners' maps (scores/class_max.py) with the same values and class ids, without K channels per pixel.
    """
    size = (int(size[0]), int(size[1]))
    if size[0] < 1 or size[1] < 1:
        raise ConfigError(f"output size must be at least 1x1, got {size[1]}x{size[0]}")
    for name in names:
        score_spec(name)
    if check_score_resolution(resolution) == "image":
        reads = {score_spec(name).reads_classes for name in names}
        # On a GPU all classes at once are a few large kernels; the winners' maps (many small steps and
        # host syncs) are for the CPU, where they were measured.
        if "all" in reads or inputs.logits.is_cuda:
            return _image_maps_all_classes(names, inputs, size, **params)
        return _image_maps_class_max(names, inputs, size, reads, **params)
    maps = {name: compute_score(name, inputs, **params) for name in names}
    class_ids = inputs.logits.argmax(dim=1).to(torch.uint8)
    if tuple(class_ids.shape[-2:]) != size:
        maps = {name: F.interpolate(score[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
                for name, score in maps.items()}
        class_ids = F.interpolate(class_ids[:, None].float(), size=size, mode="nearest")[:, 0].to(torch.uint8)
    return maps, class_ids


def score_map(name: str, inputs: ScoreInputs, size: Sequence[int], resolution: str = "image",
              **params: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Score `name` and class ids at output `size`: (float32 [B,H,W], uint8 [B,H,W]); see `score_maps`."""
    maps, class_ids = score_maps([name], inputs, size, resolution, **params)
    return maps[name], class_ids


def minmax_normalize(score: torch.Tensor) -> torch.Tensor:
    """Per-image min-max normalization to [0,1] for heat maps (thesis eq. 5.5); flat images give 0."""
    flat = score.flatten(start_dim=-2)
    lo = flat.amin(dim=-1, keepdim=True).unsqueeze(-1)
    hi = flat.amax(dim=-1, keepdim=True).unsqueeze(-1)
    return (score - lo) / (hi - lo).clamp_min(torch.finfo(score.dtype).tiny)


def _image_maps_all_classes(names: Sequence[str], inputs: ScoreInputs, size: Tuple[int, int],
                            **params: float) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
    """`image` with all K classes interpolated at every output pixel, band by band (`ScoreInputs.resized`)."""
    scores: Dict[str, List[torch.Tensor]] = {name: [] for name in names}
    class_ids = []
    for rows in _bands(inputs, size):
        band = inputs.resized(size, rows)
        for name in names:
            scores[name].append(compute_score(name, band, **params))
        class_ids.append(band.logit_max()[1].to(torch.uint8))
    return {name: _joined(parts) for name, parts in scores.items()}, _joined(class_ids)


def _joined(bands: List[torch.Tensor]) -> torch.Tensor:
    return bands[0] if len(bands) == 1 else torch.cat(bands, dim=1)  # one band: no copy


def _image_maps_class_max(names: Sequence[str], inputs: ScoreInputs, size: Tuple[int, int], reads: Set[str],
                          **params: float) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
    """`image` for scores that read the classes only through their maximum (`reads_classes`): the winners'
    maps where the 4 cells of a pixel agree, the classes that can win at the other pixels (scores/class_max.py).
    Bit-identical to `_image_maps_all_classes` for the class ids, max_logit, uem_llr, sml and norm; the
    normalized ones use the same arithmetic too (pow aside, which may round its last bit by layout)."""
    plan = ClassMaxPlan(inputs, size, "max_class_score" in reads, logit="max_logit" in reads,
                        norm="max_class_score" in reads or "norm" in names)  # the scores on the hypersphere
    if plan.undecided_share > class_max.FULL_SHARE:  # class borders nearly everywhere: all classes cost less
        return _image_maps_all_classes(names, inputs, size, **params)
    scores: Dict[str, List[torch.Tensor]] = {name: [] for name in names}
    class_ids = []
    for rows in _bands(inputs, size, CLASS_MAX_BAND_PIXELS):
        band = plan.band(rows)
        for name in names:
            scores[name].append(compute_score(name, band, **params))
        class_ids.append(band.class_ids().to(torch.uint8))
    return {name: _joined(parts) for name, parts in scores.items()}, _joined(class_ids)
