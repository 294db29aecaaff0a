"""What every score reads: the network outputs plus the linear head's parameters."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from hypood_ros.errors import ConfigError
from hypood_ros.head import HeadParams
from hypood_ros.scores.interpolation import interpolate_rows

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
    _source_norm: Optional[torch.Tensor] = field(default=None, init=False, repr=False, compare=False)

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
        """f = M z: the logits without the bias (a new tensor: the scores may change it in place)."""
        return self.logits.float() - self.head.bias.float().to(self.logits.device).view(1, -1, 1, 1)

    def embedding_norm(self) -> torch.Tensor:
        return norm_of(self.embedding)

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]

    def logit_max(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(max_k (f+b)_k, its class): the first maximum, as torch.argmax; max() is several times faster."""
        values, classes = self.full_logits().max(dim=1)
        return values, classes

    def class_score_max(self) -> torch.Tensor:
        """max_k f_k."""
        return self.class_scores().amax(dim=1)

    def source_norm(self) -> torch.Tensor:
        """||z|| per network cell, unclamped, [B,1,h,w]: what `resized` interpolates (computed once)."""
        if self._source_norm is None:
            self._source_norm = torch.linalg.vector_norm(self.embedding.float(), dim=1, keepdim=True)
        return self._source_norm

    def resized(self, size: Sequence[int], rows: Optional[Tuple[int, int]] = None) -> "ScoreInputs":
        """The inputs every score reads, interpolated to `size` first (`score_resolution = image`).

        The logits, the UEM logits and ||z|| are interpolated bilinearly (align_corners=False) to the output
        size and the registry's formulas then apply per output pixel: max and logsumexp do not commute with
        interpolation, so this order is part of the definition. The embedding enters the scores only through
        ||z||: it is interpolated as that one channel (f/||z|| becomes interp(f)/interp(||z||)), which avoids
        materializing D channels at image size (||z|| per network cell is computed once, `source_norm`).
        `rows` = (first, stop): only that band of output rows, computed from only the source rows it needs
        (`interpolation.interpolate_rows`); bands and the whole image give bit-identical interpolated values.
        The scores that read the classes only through their maximum do not call this: see
        `scores/class_max.py`.
        """
        size, rows = _check_rows(size, rows)
        return ScoreInputs(
            logits=interpolate_rows(self.logits, size, rows),
            embedding=self.resized_norm(size, rows),
            head=self.head,
            uem_logits=self.resized_uem(size, rows),
            sml_stats=self.sml_stats,
        )

    def resized_norm(self, size: Sequence[int], rows: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """interp(||z||) [B,1,rows,W], unclamped: the embedding `resized` gives."""
        size, rows = _check_rows(size, rows)
        return interpolate_rows(self.source_norm(), size, rows)

    def resized_uem(self, size: Sequence[int], rows: Optional[Tuple[int, int]] = None) -> Optional[torch.Tensor]:
        """The UEM logits interpolated to `size` [B,2,rows,W] (None without them)."""
        size, rows = _check_rows(size, rows)
        return None if self.uem_logits is None else interpolate_rows(self.uem_logits, size, rows)

    def uem_difference(self) -> torch.Tensor:
        """u_1 - u_0 upsampled (bilinear, align_corners=False) to the logit resolution."""
        if self.uem_logits is None:
            raise ConfigError("this score needs UEM logits, but the model gave none")
        u = self.uem_logits.float()
        if tuple(u.shape[2:]) != tuple(self.logits.shape[2:]):
            u = F.interpolate(u, size=self.logits.shape[2:], mode="bilinear", align_corners=False)
        return u[:, 1] - u[:, 0]


def norm_of(embedding: torch.Tensor) -> torch.Tensor:
    """||z|| over the channels of [B,D,h,w] (D = 1 for an interpolated norm), clamped to NORM_EPS."""
    return torch.linalg.vector_norm(embedding.float(), dim=1).clamp_min(NORM_EPS)


def _check_rows(size: Sequence[int], rows: Optional[Tuple[int, int]]) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    size = (int(size[0]), int(size[1]))
    rows = (0, size[0]) if rows is None else (int(rows[0]), int(rows[1]))
    if not 0 <= rows[0] < rows[1] <= size[0]:
        raise ConfigError(f"rows {rows} are not a band of an output of height {size[0]}")
    return size, rows
