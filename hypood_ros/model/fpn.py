"""FPN pixel decoder over four intermediate ViT layers (the UEM segmentor's decoder).

The four token maps of one resolution are turned into a 4x/2x/1x/0.5x pyramid (transposed
convolutions and max pooling), the final normalized tokens pass through a small MLP and join the 1x
level, a top-down FPN merges the levels, and per-level heads upsample everything to 4x the patch grid
where the levels are summed. The output is the per-pixel embedding z that the linear head classifies.
Module names follow the official implementation so its checkpoints map by prefix.
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from hypood_ros.model.layers import ProjectionMLP


def _conv_bn_relu(dim: int) -> List[nn.Module]:
    return [nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True)]


def _upsample() -> nn.Module:
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)


class FPNDecoder(nn.Module):
    def __init__(self, embed_dim: int, output_dim: int = 256, token_mlp_hidden: int = 512) -> None:
        super().__init__()
        self.output_dim = output_dim
        self.fpn1 = nn.Sequential(
            nn.GroupNorm(1, embed_dim),
            nn.ConvTranspose2d(embed_dim, embed_dim, kernel_size=2, stride=2),
            nn.BatchNorm2d(embed_dim),
            nn.GELU(),
            nn.ConvTranspose2d(embed_dim, embed_dim, kernel_size=2, stride=2),
        )
        self.fpn2 = nn.Sequential(
            nn.GroupNorm(1, embed_dim), nn.ConvTranspose2d(embed_dim, embed_dim, kernel_size=2, stride=2)
        )
        self.fpn3 = nn.GroupNorm(1, embed_dim)
        self.fpn4 = nn.Sequential(nn.GroupNorm(1, embed_dim), nn.MaxPool2d(kernel_size=2, stride=2))
        self.dino_mlp = ProjectionMLP(embed_dim, token_mlp_hidden, output_dim, num_layers=2)

        # The 1x level also carries the projected final tokens, hence its wider input.
        in_channels = [embed_dim, embed_dim, embed_dim + output_dim, embed_dim]
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, output_dim, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(nn.Conv2d(output_dim, output_dim, 3, padding=1) for _ in in_channels)
        self.heads = nn.ModuleList(
            [
                nn.Sequential(*_conv_bn_relu(output_dim)),
                nn.Sequential(*_conv_bn_relu(output_dim), _upsample()),
                nn.Sequential(*_conv_bn_relu(output_dim), _upsample(), *_conv_bn_relu(output_dim), _upsample()),
                nn.Sequential(
                    *_conv_bn_relu(output_dim), _upsample(),
                    *_conv_bn_relu(output_dim), _upsample(),
                    *_conv_bn_relu(output_dim), _upsample(),
                ),
            ]
        )

    def forward(self, final_tokens: torch.Tensor, intermediate: List[torch.Tensor], h: int, w: int) -> torch.Tensor:
        """final_tokens [B,N,C] (normalized), intermediate: 4 x [B,N,C] -> embedding [B,out,4h,4w]."""
        # contiguous(): GroupNorm's CPU backward crashes on these channels-last views (torch 2.13).
        maps = [t.transpose(1, 2).reshape(t.shape[0], -1, h, w).contiguous() for t in intermediate]
        tokens = self.dino_mlp(final_tokens).transpose(1, 2).reshape(final_tokens.shape[0], -1, h, w)
        features = [
            self.fpn1(maps[0]),
            self.fpn2(maps[1]),
            torch.cat((self.fpn3(maps[2]), tokens), dim=1),
            self.fpn4(maps[3]),
        ]
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, features)]
        for i in range(len(laterals) - 1, 0, -1):
            upsampled = F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], mode="nearest")
            laterals[i - 1] = laterals[i - 1] + upsampled
        outs = [conv(lat) for conv, lat in zip(self.fpn_convs, laterals)]
        output = self.heads[0](outs[0])
        for head, out in zip(self.heads[1:], outs[1:]):
            output = output + F.interpolate(head(out), size=output.shape[2:], mode="bilinear", align_corners=True)
        return output
