"""DINOv2 vision transformer with the official module tree and parameter names.

An official hub checkpoint (e.g. `dinov2_vitb14_reg4_pretrain.pth`) loads into `build_dinov2(name)`
with `strict=True`. Constructors never touch the network: weights are loaded explicitly.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from hypood_ros.model.layers import Block, PatchEmbed


class DinoVisionTransformer(nn.Module):
    def __init__(
        self,
        img_size: int = 518,
        patch_size: int = 14,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        init_values: float = 1.0,
        ffn_layer: str = "mlp",
        num_register_tokens: int = 0,
        interpolate_antialias: bool = False,
        interpolate_offset: float = 0.1,
    ) -> None:
        super().__init__()
        self.embed_dim = self.num_features = embed_dim
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        self.interpolate_antialias = interpolate_antialias
        self.interpolate_offset = interpolate_offset
        self.n_blocks = depth

        self.patch_embed = PatchEmbed(patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim)
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.register_tokens = (
            nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim)) if num_register_tokens else None
        )
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, init_values=init_values, ffn_layer=ffn_layer)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def interpolate_pos_encoding(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Resample the 37x37 learned grid to the input's patch grid (bicubic, as the official code)."""
        previous_dtype = x.dtype
        npatch = x.shape[1] - 1
        n = self.pos_embed.shape[1] - 1
        if npatch == n and height == width:
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        class_pos_embed = pos_embed[:, :1]
        patch_pos_embed = pos_embed[:, 1:]
        dim = x.shape[-1]
        h0, w0 = height // self.patch_size, width // self.patch_size
        m = int(math.sqrt(n))
        grid = patch_pos_embed.reshape(1, m, m, dim).permute(0, 3, 1, 2)
        if self.interpolate_offset:
            # The official models were trained with this offset; keeping it reproduces their outputs.
            scale = (float(h0 + self.interpolate_offset) / m, float(w0 + self.interpolate_offset) / m)
            grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=self.interpolate_antialias)
        else:
            grid = F.interpolate(grid, size=(h0, w0), mode="bicubic", antialias=self.interpolate_antialias)
        patch_pos_embed = grid.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((class_pos_embed, patch_pos_embed), dim=1).to(previous_dtype)

    def prepare_tokens_with_masks(self, x: torch.Tensor, masks: Optional[torch.Tensor] = None) -> torch.Tensor:
        _, _, height, width = x.shape
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"input {height}x{width} is not a multiple of the patch size {self.patch_size}")
        x = self.patch_embed(x)
        if masks is not None:
            x = torch.where(masks.unsqueeze(-1), self.mask_token.to(x.dtype).unsqueeze(0), x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(x, height, width)
        if self.register_tokens is not None:
            x = torch.cat((x[:, :1], self.register_tokens.expand(x.shape[0], -1, -1), x[:, 1:]), dim=1)
        return x

    def forward_features(self, x: torch.Tensor, masks: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        x = self.prepare_tokens_with_masks(x, masks)
        for blk in self.blocks:
            x = blk(x)
        return self._named_tokens(x, masks)

    def _named_tokens(self, x_prenorm: torch.Tensor, masks: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        x_norm = self.norm(x_prenorm)
        r = self.num_register_tokens
        return {
            "x_norm_clstoken": x_norm[:, 0],
            "x_norm_regtokens": x_norm[:, 1 : r + 1],
            "x_norm_patchtokens": x_norm[:, r + 1 :],
            "x_prenorm": x_prenorm,
            "masks": masks,
        }

    def _block_indices(self, n: Union[int, Sequence[int]]) -> List[int]:
        total = len(self.blocks)
        indices = list(range(total - n, total)) if isinstance(n, int) else [int(i) for i in n]
        bad = [i for i in indices if not 0 <= i < total]
        if bad:
            raise ValueError(f"block indices {bad} out of range for a {total}-block model")
        return indices

    def forward_with_intermediates(
        self, x: torch.Tensor, n: Union[int, Sequence[int]]
    ) -> Tuple[Dict[str, torch.Tensor], List[torch.Tensor]]:
        """One pass that yields `forward_features` and the raw (pre-norm) outputs of blocks `n`.

        The official segmentor runs the backbone twice for these; one pass gives the same tensors.
        """
        indices = self._block_indices(n)
        x = self.prepare_tokens_with_masks(x)
        taken = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in indices:
                taken.append(x)
        return self._named_tokens(x), taken

    def get_intermediate_layers(
        self,
        x: torch.Tensor,
        n: Union[int, Sequence[int]] = 1,
        reshape: bool = False,
        return_class_token: bool = False,
        norm: bool = True,
    ):
        """Outputs of the last `n` blocks (int) or of the listed block indices, official semantics."""
        _, _, height, width = x.shape
        _, outputs = self.forward_with_intermediates(x, n)
        if norm:
            outputs = [self.norm(out) for out in outputs]
        class_tokens = [out[:, 0] for out in outputs]
        outputs = [out[:, 1 + self.num_register_tokens :] for out in outputs]
        if reshape:
            b = x.shape[0]
            hp, wp = height // self.patch_size, width // self.patch_size
            outputs = [out.reshape(b, hp, wp, -1).permute(0, 3, 1, 2).contiguous() for out in outputs]
        if return_class_token:
            return tuple(zip(outputs, class_tokens))
        return tuple(outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)["x_norm_clstoken"])


#: Official architectures (embed_dim, depth, num_heads, ffn_layer) of the hub models.
ARCHITECTURES = {
    "vits14": dict(embed_dim=384, depth=12, num_heads=6, ffn_layer="mlp"),
    "vitb14": dict(embed_dim=768, depth=12, num_heads=12, ffn_layer="mlp"),
    "vitl14": dict(embed_dim=1024, depth=24, num_heads=16, ffn_layer="mlp"),
    "vitg14": dict(embed_dim=1536, depth=40, num_heads=24, ffn_layer="swiglufused"),
}


def dinov2_config(name: str) -> dict:
    """Constructor keywords of an official hub model, e.g. `dinov2_vitb14_reg`."""
    base = name[len("dinov2_"):] if name.startswith("dinov2_") else name
    registers = base.endswith("_reg")
    arch = base[: -len("_reg")] if registers else base
    if arch not in ARCHITECTURES:
        known = ", ".join(f"dinov2_{a}{s}" for a in ARCHITECTURES for s in ("", "_reg"))
        raise ValueError(f"unknown DINOv2 model {name!r}; known: {known}")
    return dict(
        img_size=518,
        patch_size=14,
        init_values=1.0,
        num_register_tokens=4 if registers else 0,
        interpolate_antialias=registers,
        interpolate_offset=0.0 if registers else 0.1,
        **ARCHITECTURES[arch],
    )


def build_dinov2(name: str, **overrides) -> DinoVisionTransformer:
    """An official DINOv2 architecture with random weights (load a checkpoint explicitly)."""
    return DinoVisionTransformer(**{**dinov2_config(name), **overrides})
