"""Training configuration: a dataclass, filled from a YAML file and `key=value` command-line overrides."""
from __future__ import annotations

import dataclasses
import math
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
    # The window validation runs the network at; stage segmentor records it as the checkpoint's input size.
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
        """Every value checked before any work starts; ConfigError naming the field otherwise."""
        from hypood_ros.model.segmentor import PRESETS

        if self.stage not in ("segmentor", "uem"):
            raise ConfigError(f"stage must be 'segmentor' or 'uem', got {self.stage!r}")
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; known: {', '.join(sorted(PRESETS))}")
        if not self.out.strip():
            raise ConfigError("out must name the run folder, got ''")
        if self.init is not None and not self.init.strip():
            raise ConfigError("init must name a checkpoint file, got ''")
        _at_least(self, 1, "steps", "batch_size", "log_every", "ckpt_every")
        _at_least(self, 0, "warmup_steps", "num_workers", "val_every", "val_images")
        if not 0 <= self.seed < 2 ** 31:
            raise ConfigError(f"seed must be in [0, {2 ** 31 - 1}], got {self.seed}")
        _number_at_least(self, "lr", 0.0, open_=True)
        for name in ("weight_decay", "lr_end", "power"):
            _number_at_least(self, name, 0.0)
        for name in ("crop", "val_window"):
            sides = _pair(self, name, int, positive=True)
            if any(c % 14 for c in sides):
                raise ConfigError(f"{name} sides must be multiples of 14 (the patch size), got {list(sides)}")
        _pair(self, "val_stride", int, positive=True)
        low, high = _pair(self, "scale", float, positive=True)
        if low > high:
            raise ConfigError(f"scale must be [low, high] with low <= high, got {list(self.scale)}")
        low, high = _pair(self, "paste_scale", float, positive=True)
        if low > high or high > 1.0:
            raise ConfigError(f"paste_scale must be [low, high] with 0 < low <= high <= 1, got {[low, high]}")
        if self.outliers not in ("coco", "synthetic"):
            raise ConfigError(f"outliers must be 'coco' or 'synthetic', got {self.outliers!r}")
        if self.train_backbone and self.stage != "segmentor":
            raise ConfigError("train_backbone applies to stage 'segmentor' only (stage 'uem' trains the UEM alone)")
        if not (math.isfinite(self.ood_prob) and 0.0 <= self.ood_prob <= 1.0):
            raise ConfigError(f"ood_prob must be in [0, 1], got {self.ood_prob}")
        for name in ("ood_label", "ignore_index"):
            value = getattr(self, name)
            if not 19 <= value <= 255:  # label maps are 8-bit; 0-18 are the Cityscapes classes
                raise ConfigError(f"{name} must be in [19, 255] (0-18 are the classes), got {value}")
        if self.ood_label == self.ignore_index:
            raise ConfigError(f"ood_label and ignore_index must differ, both are {self.ood_label}")
        if self.stage == "uem" and not self.init:
            raise ConfigError("stage 'uem' needs init: the trained segmentor checkpoint")
        return self


def _at_least(cfg: TrainConfig, low: int, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value < low:
            raise ConfigError(f"{name} must be at least {low}, got {value}")


def _number_at_least(cfg: TrainConfig, name: str, low: float, open_: bool = False) -> None:
    value = getattr(cfg, name)
    if not math.isfinite(value) or value < low or (open_ and value == low):
        raise ConfigError(f"{name} must be a finite number {'>' if open_ else '>='} {low:g}, got {value}")


def _pair(cfg: TrainConfig, name: str, kind: type, positive: bool = False) -> tuple:
    """A two-item list of `kind` (ints are numbers too; bools are neither), each > 0 when positive."""
    value = getattr(cfg, name)
    what = "integers" if kind is int else "numbers"

    def fits(item) -> bool:
        if isinstance(item, bool) or not isinstance(item, (int, float) if kind is float else int):
            return False
        return math.isfinite(item) and (item > 0 or not positive)

    if len(value) != 2 or not all(fits(item) for item in value):
        raise ConfigError(f"{name} must be a list of two {'positive ' if positive else ''}{what}, got {value!r}")
    return tuple(value)


def _reason(exc: Exception) -> str:
    """Why a config file could not be read, in one line (YAML errors with their line and column)."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.YAMLError) and mark is not None:
        return f"{getattr(exc, 'problem', None) or 'invalid YAML'} (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, UnicodeDecodeError):
        return "not a text file"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_config(path: Optional[str], overrides: List[str], **fixed) -> TrainConfig:
    data = {}
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {_reason(exc)}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must hold key: value fields of TrainConfig, got a "
                              f"{type(data).__name__}")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        try:
            data[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "not a YAML value"
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({problem})") from None
    data.update({k: v for k, v in fixed.items() if v is not None})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(str(key) for key in set(data) - names)
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
