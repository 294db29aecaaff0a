"""The network: DINOv2 backbone, FPN decoder, linear head and UEM as plain nn.Modules."""
from hypood_ros.model.checkpoint import load_checkpoint, save_checkpoint
from hypood_ros.model.segmentor import PRESETS, Segmentor, build_segmentor, preset_config
from hypood_ros.model.vision_transformer import DinoVisionTransformer, build_dinov2, dinov2_config

__all__ = [
    "DinoVisionTransformer",
    "PRESETS",
    "Segmentor",
    "build_dinov2",
    "build_segmentor",
    "dinov2_config",
    "load_checkpoint",
    "preset_config",
    "save_checkpoint",
]
