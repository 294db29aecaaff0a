"""The fused CUDA score kernel and its dispatcher (torch reference on CPU)."""
from hypood_ros.kernels.fused import FusedArgs, FusedScores, fused_scores, reference_fused_scores

__all__ = ["FusedArgs", "FusedScores", "fused_scores", "reference_fused_scores"]
