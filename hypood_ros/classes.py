"""Class names and colours of a model's semantic classes: carried by the checkpoint, Cityscapes by default.

The colour map, the node's `classes` topic and anything that names a label read one `ClassInfo`, so a
checkpoint with K classes gets K names and K distinct colours whatever K is (ids are uint8; 255 is
unlabelled and drawn black). ROS-free.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Set, Tuple

import numpy as np

#: Key of the class metadata (`ClassInfo.to_json()`) in an exported ONNX file.
CLASSES_KEY = "hypood_ros.classes"
#: Label id of pixels without a class (drawn black).
UNLABELLED = 255
MAX_CLASSES = 255

#: Cityscapes train ids 0..18, as in the Cityscapes scripts.
CITYSCAPES_NAMES: Tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
CITYSCAPES_COLORS: Tuple[Tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

Color = Tuple[int, int, int]


def _bit_color(index: int) -> Color:
    """Spread the bits of `index` over the high bits of R, G and B: distinct colours for distinct ids."""
    r = g = b = 0
    for shift in range(8):
        r |= ((index >> (3 * shift)) & 1) << (7 - shift)
        g |= ((index >> (3 * shift + 1)) & 1) << (7 - shift)
        b |= ((index >> (3 * shift + 2)) & 1) << (7 - shift)
    return (r, g, b)


def extra_colors(count: int, taken: Iterable[Color] = ()) -> Tuple[Color, ...]:
    """`count` colours different from each other, from `taken` and from black (the unlabelled colour)."""
    used: Set[Color] = set(taken) | {(0, 0, 0)}
    out = []
    index = 1
    while len(out) < count:
        color = _bit_color(index)
        index += 1
        if color not in used:
            used.add(color)
            out.append(color)
    return tuple(out)


@dataclass(frozen=True)
class ClassInfo:
    names: Tuple[str, ...]
    colors: Tuple[Color, ...]

    def __post_init__(self) -> None:
        names = tuple(self.names)
        colors = tuple(tuple(int(v) for v in c) for c in self.colors)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "colors", colors)
        if not 1 <= len(names) <= MAX_CLASSES:
            raise ValueError(f"between 1 and {MAX_CLASSES} classes are supported, got {len(names)}")
        if len(colors) != len(names):
            raise ValueError(f"{len(names)} class names but {len(colors)} colours")
        if not all(isinstance(n, str) and n for n in names):
            raise ValueError("class names must be non-empty strings")
        if not all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in colors):
            raise ValueError("class colours must be [r, g, b] with values 0..255")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def lut(self) -> np.ndarray:
        """256x3 uint8 lookup table: label id -> RGB; ids without a class (255 included) are black."""
        table = np.zeros((256, 3), dtype=np.uint8)
        table[: self.num_classes] = np.asarray(self.colors, dtype=np.uint8)
        return table

    def to_metadata(self) -> dict:
        """Plain lists, as stored in checkpoints (safe for `torch.load(weights_only=True)`) and JSON."""
        return {"names": list(self.names), "colors": [list(c) for c in self.colors]}

    def to_json(self) -> str:
        return json.dumps({**self.to_metadata(), "unlabelled": UNLABELLED})

    @classmethod
    def from_json(cls, text: str, num_classes: int) -> "ClassInfo":
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError("class metadata is not valid JSON") from None
        return cls.from_metadata(data, num_classes)

    @classmethod
    def from_metadata(cls, data: Optional[Mapping], num_classes: int) -> "ClassInfo":
        """Stored class metadata checked against the model's class count; None gives the default."""
        if data is None:
            return default_classes(num_classes)
        if not isinstance(data, Mapping) or not isinstance(data.get("names"), (list, tuple)) \
                or not isinstance(data.get("colors"), (list, tuple)):
            raise ValueError("class metadata must hold lists 'names' and 'colors'")
        try:
            info = cls(tuple(data["names"]), tuple(tuple(c) for c in data["colors"]))
        except TypeError:
            raise ValueError("class colours must be [r, g, b] with values 0..255") from None
        if info.num_classes != num_classes:
            raise ValueError(f"class metadata names {info.num_classes} classes, the model has {num_classes}")
        return info


def default_classes(num_classes: int) -> ClassInfo:
    """Cityscapes for 19 classes; otherwise `class_<i>` names. Cityscapes colours first, then distinct ones."""
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"between 1 and {MAX_CLASSES} classes are supported, got {num_classes}")
    names = CITYSCAPES_NAMES if num_classes == len(CITYSCAPES_NAMES) else \
        tuple(f"class_{i}" for i in range(num_classes))
    colors = CITYSCAPES_COLORS[:num_classes]
    colors += extra_colors(num_classes - len(colors), taken=colors)
    return ClassInfo(names, colors)
