"""OOD scores: one registry, used by evaluation, training, the node and the kernel's reference."""
from hypood_ros.scores.inputs import NORM_EPS, ScoreInputs
from hypood_ros.scores.registry import (
    BAND_PIXELS,
    SCORE_RESOLUTIONS,
    SCORES,
    ScoreSpec,
    check_score_resolution,
    compute_score,
    minmax_normalize,
    score_map,
    score_maps,
    score_spec,
)
from hypood_ros.scores.sml import SMLFitter, SMLStats, load_sml_stats

__all__ = [
    "BAND_PIXELS",
    "NORM_EPS",
    "SCORES",
    "SCORE_RESOLUTIONS",
    "SMLFitter",
    "SMLStats",
    "ScoreInputs",
    "ScoreSpec",
    "check_score_resolution",
    "compute_score",
    "load_sml_stats",
    "minmax_normalize",
    "score_map",
    "score_maps",
    "score_spec",
]
