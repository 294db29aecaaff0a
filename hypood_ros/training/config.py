"""Training configuration: a dataclass, filled from a YAML file and `key=value` command-line overrides."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import yaml

from hypood_ros.errors import ConfigError


@dataclass
class TrainConfig:
    stage: str = "segmentor"  # segmentor | uem
    data_root: str = ""  # Cityscapes layout: leftImg8bit/, gtFine/
    out: str = "runs/train"
    preset: str = "vitb14_reg"
    init: Optional[str] = None  # project checkpoint to start from (converted DINOv2, or the stage-1 model)
    # Stage 1 only. The paper keeps a pretrained DINOv2 frozen (false). true also trains the backbone, for a
    # model started from random weights where no pretrained one exists (the generated-scene demo model).
    train_backbone: bool = False
    steps: int = 90_000
    batch_size: int = 2  # per process
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup_steps: int = 1500
    lr_end: float = 1e-7
    power: float = 1.0
    crop: List[int] = field(default_factory=lambda: [518, 1036])
    scale: List[float] = field(default_factory=lambda: [0.5, 2.0])
    flip: bool = True
    amp: bool = True  # mixed precision, on CUDA only
    num_workers: int = 4
    seed: int = 2000
    log_every: int = 50
    val_every: int = 2000
    val_images: int = 0  # 0 = the whole val split
    val_window: List[int] = field(default_factory=lambda: [518, 1036])
    val_stride: List[int] = field(default_factory=lambda: [140, 140])
    ckpt_every: int = 1000
    # Stage 2 (AnomalyMix): outliers pasted onto the scenes.
    outliers: str = "coco"  # coco: instances of coco_annotations | synthetic: generated training-family objects
    coco_root: str = ""  # folder with the COCO images of the annotation file
    coco_annotations: str = ""  # instances_*.json
    ood_prob: float = 0.2  # probability that a training image gets pasted objects
    paste_scale: List[float] = field(default_factory=lambda: [0.1, 0.5])  # object size / image height
    ood_label: int = 254  # label value marking pasted pixels in the mixed label map
    ignore_index: int = 255

    def validate(self) -> "TrainConfig":
        if self.stage not in ("segmentor", "uem"):
            raise ConfigError(f"stage must be 'segmentor' or 'uem', got {self.stage!r}")
        if self.steps <= 0 or self.batch_size <= 0:
            raise ConfigError("steps and batch_size must be positive")
        if any(c % 14 for c in self.crop) or any(c % 14 for c in self.val_window):
            raise ConfigError("crop and val_window sides must be multiples of 14")
        if self.outliers not in ("coco", "synthetic"):
            raise ConfigError(f"outliers must be 'coco' or 'synthetic', got {self.outliers!r}")
        if self.train_backbone and self.stage != "segmentor":
            raise ConfigError("train_backbone applies to stage 'segmentor' only (stage 'uem' trains the UEM alone)")
        if not 0.0 <= self.ood_prob <= 1.0:
            raise ConfigError("ood_prob must be in [0, 1]")
        if self.stage == "uem" and not self.init:
            raise ConfigError("stage 'uem' needs init: the trained segmentor checkpoint")
        return self


def load_config(path: Optional[str], overrides: List[str], **fixed) -> TrainConfig:
    data = {}
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        data[key.strip()] = yaml.safe_load(value)
    data.update({k: v for k, v in fixed.items() if v is not None})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config keys {unknown}; known: {sorted(names)}")
    data = {key: _typed(key, value) for key, value in data.items()}
    return TrainConfig(**data).validate()


def _typed(key: str, value):
    """The value in its field's type (ints and YAML's unparsed '5e-4' accepted for floats); ConfigError if not."""
    default = TrainConfig()
    expected = type(getattr(default, key))
    if getattr(default, key) is None:  # Optional[str]
        expected = str
    if value is None and getattr(default, key) is None:
        return None
    if expected is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        name = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}
        raise ConfigError(f"{key} must be {name.get(expected, expected.__name__)}, got {value!r}")
    return value
