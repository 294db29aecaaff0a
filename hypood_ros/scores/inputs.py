"""What every score reads: the network outputs plus the linear head's parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from hypood_ros.errors import ConfigError
from hypood_ros.runtimes.base import HeadParams

#: ||z|| is clamped to this before dividing: a zero embedding gives f = 0 and hence f/||z|| = 0, so the
#: normalized scores of a zero embedding are those of all-zero class scores (e.g. energy -log K).
NORM_EPS = 1e-6


@dataclass
class ScoreInputs:
    """logits = seg_logits (f + b) [B,K,h,w]; embedding z [B,D,h,w]; uem_logits [B,2,h',w']."""

    logits: torch.Tensor
    embedding: torch.Tensor
    head: HeadParams
    uem_logits: Optional[torch.Tensor] = None
    sml_stats: Optional["SMLStats"] = None  # noqa: F821 (defined in scores.sml)

    def __post_init__(self) -> None:
        if self.logits.dim() != 4:
            raise ConfigError(f"logits must be [B,K,h,w], got shape {tuple(self.logits.shape)}")
        b, k, h, w = self.logits.shape
        if self.embedding.dim() != 4 or self.embedding.shape[0] != b or tuple(self.embedding.shape[2:]) != (h, w):
            raise ConfigError(
                f"embedding shape {tuple(self.embedding.shape)} does not match logits {tuple(self.logits.shape)}"
            )
        if self.head.bias.numel() != k or self.head.weight_norm.numel() != k:
            raise ConfigError(f"head parameters have {self.head.bias.numel()} classes, logits have {k}")
        if self.uem_logits is not None and (
            self.uem_logits.dim() != 4 or self.uem_logits.shape[0] != b or self.uem_logits.shape[1] != 2
        ):
            raise ConfigError(f"uem_logits must be [B,2,h',w'], got shape {tuple(self.uem_logits.shape)}")

    # Derived quantities, all in float32 whatever the backend's dtype.
    def full_logits(self) -> torch.Tensor:
        return self.logits.float()

    def class_scores(self) -> torch.Tensor:
        """f = M z: the logits without the bias."""
        return self.logits.float() - self.head.bias.float().to(self.logits.device).view(1, -1, 1, 1)

    def embedding_norm(self) -> torch.Tensor:
        return torch.linalg.vector_norm(self.embedding.float(), dim=1).clamp_min(NORM_EPS)

    def resized(self, size: Sequence[int]) -> "ScoreInputs":
        """The inputs every score reads, interpolated to `size` first (`score_resolution = image`).

        The official UEM code upsamples the logits and the UEM logits to the image (bilinear,
        align_corners=False) and applies its formula per image pixel; max and logsumexp do not commute
        with interpolation, so this order is part of the definition. The embedding enters the scores only
        through ||z||: it is interpolated as that one channel (f/||z|| becomes interp(f)/interp(||z||)),
        which avoids materializing D channels at image size. Every registry formula applies unchanged.
        """
        size = (int(size[0]), int(size[1]))

        def interp(t: torch.Tensor) -> torch.Tensor:
            t = t.float()
            if tuple(t.shape[2:]) == size:
                return t
            return F.interpolate(t, size=size, mode="bilinear", align_corners=False)

        norm = torch.linalg.vector_norm(self.embedding.float(), dim=1, keepdim=True)
        return ScoreInputs(
            logits=interp(self.logits),
            embedding=interp(norm),  # one channel: its vector norm is the interpolated ||z||
            head=self.head,
            uem_logits=None if self.uem_logits is None else interp(self.uem_logits),
            sml_stats=self.sml_stats,
        )

    def uem_difference(self) -> torch.Tensor:
        """u_1 - u_0 upsampled (bilinear, align_corners=False) to the logit resolution."""
        if self.uem_logits is None:
            raise ConfigError("this score needs UEM logits, but the model gave none")
        u = self.uem_logits.float()
        if tuple(u.shape[2:]) != tuple(self.logits.shape[2:]):
            u = F.interpolate(u, size=self.logits.shape[2:], mode="bilinear", align_corners=False)
        return u[:, 1] - u[:, 0]
