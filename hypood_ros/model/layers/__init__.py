"""Transformer building blocks, one per file, with the official DINOv2 parameter names."""
from hypood_ros.model.layers.attention import Attention
from hypood_ros.model.layers.block import Block
from hypood_ros.model.layers.layer_scale import LayerScale
from hypood_ros.model.layers.mlp import Mlp
from hypood_ros.model.layers.patch_embed import PatchEmbed
from hypood_ros.model.layers.projection_mlp import ProjectionMLP
from hypood_ros.model.layers.swiglu_ffn import SwiGLUFFN

__all__ = ["Attention", "Block", "LayerScale", "Mlp", "PatchEmbed", "ProjectionMLP", "SwiGLUFFN"]
