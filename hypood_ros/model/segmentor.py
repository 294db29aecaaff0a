"""The full network: frozen DINOv2 backbone, FPN decoder, linear head and UEM, with named outputs."""
from __future__ import annotations

import copy
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hypood_ros.head import HeadParams
from hypood_ros.model.fpn import FPNDecoder
from hypood_ros.model.uem import UnknownEstimationModule
from hypood_ros.model.vision_transformer import build_dinov2

#: Presets are data: constructor keywords of `Segmentor`.
PRESETS: Dict[str, dict] = {
    # The UEM paper's configuration (official configs: dinov2_vitb14_reg, blocks 1/4/8/11, FPN 256, UEM 768-512-256).
    "vitb14_reg": dict(
        backbone="dinov2_vitb14_reg", backbone_overrides={}, layers=[1, 4, 8, 11], decoder_dim=256,
        token_mlp_hidden=512, num_classes=19, uem_hidden=512, uem_dim=256, uem_layers=3,
    ),
    "vits14": dict(
        backbone="dinov2_vits14", backbone_overrides={}, layers=[1, 4, 8, 11], decoder_dim=256,
        token_mlp_hidden=512, num_classes=19, uem_hidden=512, uem_dim=256, uem_layers=3,
    ),
    "vits14_reg": dict(
        backbone="dinov2_vits14_reg", backbone_overrides={}, layers=[1, 4, 8, 11], decoder_dim=256,
        token_mlp_hidden=512, num_classes=19, uem_hidden=512, uem_dim=256, uem_layers=3,
    ),
    # Small enough for tests and the CPU demo; same code path as the real presets.
    "tiny": dict(
        backbone="dinov2_vits14",
        backbone_overrides=dict(embed_dim=64, depth=4, num_heads=2, img_size=224),
        layers=[0, 1, 2, 3], decoder_dim=32, token_mlp_hidden=64, num_classes=19,
        uem_hidden=64, uem_dim=32, uem_layers=3,
    ),
}


class Segmentor(nn.Module):
    """forward(x [B,3,H,W]) -> {"seg_logits", "embedding", "uem_logits"} (see docs/ARCHITECTURE.md)."""

    def __init__(
        self,
        backbone: str = "dinov2_vitb14_reg",
        backbone_overrides: Optional[dict] = None,
        layers: Sequence[int] = (1, 4, 8, 11),
        decoder_dim: int = 256,
        token_mlp_hidden: int = 512,
        num_classes: int = 19,
        uem_hidden: int = 512,
        uem_dim: int = 256,
        uem_layers: int = 3,
    ) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"the FPN decoder needs 4 intermediate layers, got {list(layers)}")
        self.config = dict(
            backbone=backbone, backbone_overrides=dict(backbone_overrides or {}), layers=[int(i) for i in layers],
            decoder_dim=decoder_dim, token_mlp_hidden=token_mlp_hidden, num_classes=num_classes,
            uem_hidden=uem_hidden, uem_dim=uem_dim, uem_layers=uem_layers,
        )
        self.layers: List[int] = self.config["layers"]
        self.backbone = build_dinov2(backbone, **self.config["backbone_overrides"])
        self.backbone._block_indices(self.layers)  # validates the indices now, not at the first frame
        dim = self.backbone.embed_dim
        self.decoder = FPNDecoder(dim, output_dim=decoder_dim, token_mlp_hidden=token_mlp_hidden)
        self.head = nn.Linear(decoder_dim, num_classes)
        self.uem = UnknownEstimationModule(dim, uem_hidden, uem_dim, uem_layers)

    @property
    def patch_size(self) -> int:
        return self.backbone.patch_size

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def freeze_backbone(self) -> "Segmentor":
        """Stage 1 and 2 keep DINOv2 frozen (a model without a pretrained backbone may opt out in stage 1:
        TrainConfig.train_backbone)."""
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        return self

    def features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Backbone + decoder: normalized final tokens and the per-pixel embedding."""
        _, _, height, width = x.shape
        h, w = height // self.patch_size, width // self.patch_size
        tokens, intermediate = self.backbone.forward_with_intermediates(x, self.layers)
        skip = 1 + self.backbone.num_register_tokens
        intermediate = [self.backbone.norm(t)[:, skip:] for t in intermediate]
        final = tokens["x_norm_patchtokens"]
        return {"tokens": final, "embedding": self.decoder(final, intermediate, h, w), "grid": (h, w)}

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """The linear head applied per pixel (a 1x1 convolution with the Linear's parameters)."""
        return F.conv2d(embedding, self.head.weight[:, :, None, None], self.head.bias)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        feats = self.features(x)
        h, w = feats["grid"]
        return {
            "seg_logits": self.classify(feats["embedding"]),
            "embedding": feats["embedding"],
            "uem_logits": self.uem(feats["tokens"], h, w),
        }

    def head_params(self) -> HeadParams:
        weight = self.head.weight.detach().float()
        return HeadParams(weight_norm=weight.norm(dim=1), bias=self.head.bias.detach().float().clone())


def preset_config(preset: str, **overrides) -> dict:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
    return {**copy.deepcopy(PRESETS[preset]), **overrides}


def build_segmentor(preset: str = "vitb14_reg", **overrides) -> Segmentor:
    """A segmentor with random weights; load weights with `load_checkpoint` or `hypood convert`."""
    return Segmentor(**preset_config(preset, **overrides))
