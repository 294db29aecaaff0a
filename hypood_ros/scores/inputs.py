"""What every score reads: the network outputs plus the linear head's parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from hypood_ros.errors import ConfigError
from hypood_ros.head import HeadParams
from hypood_ros.scores.interpolation import interpolate_rows, source_rows

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

    def resized(self, size: Sequence[int], rows: Optional[Tuple[int, int]] = None) -> "ScoreInputs":
        """The inputs every score reads, interpolated to `size` first (`score_resolution = image`).

        The logits, the UEM logits and ||z|| are interpolated bilinearly (align_corners=False) to the output
        size and the registry's formulas then apply per output pixel: max and logsumexp do not commute with
        interpolation, so this order is part of the definition. The embedding enters the scores only through
        ||z||: it is interpolated as that one channel (f/||z|| becomes interp(f)/interp(||z||)), which avoids
        materializing D channels at image size. `rows` = (first, stop): only that band of output rows,
        computed from only the source rows it needs (`interpolation.interpolate_rows`); bands and the whole
        image give bit-identical interpolated values.
        """
        size = (int(size[0]), int(size[1]))
        rows = (0, size[0]) if rows is None else (int(rows[0]), int(rows[1]))
        if not 0 <= rows[0] < rows[1] <= size[0]:
            raise ConfigError(f"rows {rows} are not a band of an output of height {size[0]}")
        first, stop = source_rows(self.embedding.shape[2], size[0], rows)
        norm = torch.linalg.vector_norm(self.embedding[:, :, first:stop].float(), dim=1, keepdim=True)
        return ScoreInputs(
            logits=interpolate_rows(self.logits, size, rows),
            embedding=interpolate_rows(norm, size, rows, source_offset=first,
                                       source_height=self.embedding.shape[2]),
            head=self.head,
            uem_logits=None if self.uem_logits is None else interpolate_rows(self.uem_logits, size, rows),
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
