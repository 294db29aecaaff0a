"""The fused CUDA score kernel and its dispatcher (torch reference on CPU)."""
from hypood_ros.kernels.fused import FusedScores, fused_scores, reference_fused_scores

__all__ = ["FusedScores", "fused_scores", "reference_fused_scores"]
