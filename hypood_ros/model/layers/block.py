"""Pre-norm transformer block with layer scale, as in DINOv2."""
import torch
from torch import nn

from hypood_ros.model.layers.attention import Attention
from hypood_ros.model.layers.layer_scale import LayerScale
from hypood_ros.model.layers.mlp import Mlp
from hypood_ros.model.layers.swiglu_ffn import SwiGLUFFN

FFN_LAYERS = {"mlp": Mlp, "swiglufused": SwiGLUFFN, "swiglu": SwiGLUFFN}


class Block(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        init_values: float = 1.0,
        ffn_layer: str = "mlp",
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads=num_heads)
        self.ls1 = LayerScale(dim, init_values=init_values)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = FFN_LAYERS[ffn_layer](dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values=init_values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))
