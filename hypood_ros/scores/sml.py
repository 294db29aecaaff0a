"""Standardized max logit statistics: per-class mean/std of the max logit on in-distribution pixels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import torch

from hypood_ros.errors import ConfigError


@dataclass
class SMLStats:
    mean: torch.Tensor  # [K]
    std: torch.Tensor  # [K]

    def to_dict(self) -> Dict[str, List[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: Dict[str, List[float]]) -> "SMLStats":
        try:
            mean = torch.tensor(data["mean"], dtype=torch.float32)
            std = torch.tensor(data["std"], dtype=torch.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid SML statistics: {exc}") from None
        if mean.shape != std.shape or mean.dim() != 1:
            raise ConfigError("SML statistics need equally long 1-D 'mean' and 'std' lists")
        return cls(mean, std)


def load_sml_stats(path) -> SMLStats:
    """Statistics written by `hypood fit-sml` (JSON with per-class 'mean' and 'std')."""
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read SML statistics {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: SML statistics must be a JSON object with 'mean' and 'std'")
    return SMLStats.from_dict(data)


class SMLFitter:
    """Streams batches of logits and accumulates, per predicted class, the max-logit moments.

    Float64 sums keep the variance exact enough over millions of pixels.
    """

    def __init__(self, num_classes: int) -> None:
        self.count = torch.zeros(num_classes, dtype=torch.float64)
        self.total = torch.zeros(num_classes, dtype=torch.float64)
        self.total_sq = torch.zeros(num_classes, dtype=torch.float64)

    def update(self, logits: torch.Tensor, valid: Optional[torch.Tensor] = None) -> None:
        """logits [B,K,h,w] (with bias); valid: optional bool mask [B,h,w] of in-distribution pixels."""
        values, classes = logits.detach().double().max(dim=1)
        if valid is not None:
            values, classes = values[valid], classes[valid]
        values, classes = values.flatten().cpu(), classes.flatten().cpu()
        k = self.count.numel()
        self.count += torch.bincount(classes, minlength=k).double()
        self.total += torch.bincount(classes, weights=values, minlength=k)
        self.total_sq += torch.bincount(classes, weights=values * values, minlength=k)

    def finish(self, min_std: float = 1e-6) -> SMLStats:
        """Classes never predicted get mean 0 and std 1 (no standardization), and are reported."""
        seen = self.count > 0
        mean = torch.where(seen, self.total / self.count.clamp_min(1), torch.zeros_like(self.total))
        var = torch.where(seen, self.total_sq / self.count.clamp_min(1) - mean * mean, torch.ones_like(self.total))
        std = var.clamp_min(0).sqrt().clamp_min(min_std)
        return SMLStats(mean.float(), std.float())
