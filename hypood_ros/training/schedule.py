"""Learning-rate schedule: linear warm-up, then polynomial decay to `lr_end` (as the official configs)."""
from __future__ import annotations

import torch


def poly_with_warmup(optimizer: torch.optim.Optimizer, warmup: int, total: int, lr_end: float, power: float):
    base = optimizer.defaults["lr"]

    def factor(step: int) -> float:
        if step < warmup:
            return float(step + 1) / float(max(1, warmup))
        if step >= total:
            return lr_end / base
        remaining = 1.0 - (step - warmup) / float(max(1, total - warmup))
        return ((base - lr_end) * remaining ** power + lr_end) / base

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
