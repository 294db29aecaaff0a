"""SwiGLU feed-forward network used by ViT-g/14 (`w12` fused gate+value, `w3` output)."""
import torch
import torch.nn.functional as F
from torch import nn


def swiglu_hidden_features(hidden_features: int) -> int:
    """The official "fused" variant shrinks the hidden size by 2/3 and rounds up to a multiple of 8."""
    return (int(hidden_features * 2 / 3) + 7) // 8 * 8


class SwiGLUFFN(nn.Module):
    def __init__(self, in_features: int, hidden_features: int, bias: bool = True) -> None:
        super().__init__()
        hidden = swiglu_hidden_features(hidden_features)
        self.w12 = nn.Linear(in_features, 2 * hidden, bias=bias)
        self.w3 = nn.Linear(hidden, in_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)
