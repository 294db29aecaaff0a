"""A picture and its label map drawn together: every primitive writes the same pixels into both.

Shapes are rasterized once into a local mask (no anti-aliasing) and that mask sets the colour and the
label, so a label is exactly the set of pixels its object coloured (later, nearer shapes overwrite both).
Beside the labels the canvas keeps an instance map: OOD pixels get the id in `instance` at the time they
are drawn (the anomaly being drawn), every other label sets 0; so each anomaly's visible pixels carry its
own id, and the map is non-zero exactly where the label is OOD. It also keeps the lowest point of each
instance's shapes (`bottoms`, whether inside the picture or not). Neither takes part in the picture.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

#: Label value of pixels drawn by an anomaly (an object of no Cityscapes class).
OOD = 254
#: Label value of pixels that belong to no scored region (the ego vehicle), as Cityscapes' ignore id.
VOID = 255


class Canvas:
    def __init__(self, height: int, width: int, rng: np.random.Generator) -> None:
        self.rgb = np.zeros((height, width, 3), np.float32)
        self.label = np.full((height, width), VOID, np.uint8)
        self.grain = rng.standard_normal((height, width, 1)).astype(np.float32)  # surface texture
        self.instances = np.zeros((height, width), np.uint16)  # id of the object of each OOD pixel, 0 elsewhere
        self.instance = 0  # id that OOD pixels drawn from now on get
        self.bottoms: Dict[int, float] = {}  # instance id -> lowest point of its shapes (largest y, pixels)

    @property
    def shape(self):
        return self.label.shape

    def _mask(self, polygons: Sequence[np.ndarray]):
        """Local boolean mask of the filled polygons and its (y0, x0) offset, or None if off-image."""
        import cv2

        pts = [np.round(np.asarray(p, np.float64)).astype(np.int32).reshape(-1, 2) for p in polygons if len(p) >= 3]
        if not pts:
            return None
        allp = np.concatenate(pts)
        h, w = self.shape
        x0, y0 = max(int(allp[:, 0].min()), 0), max(int(allp[:, 1].min()), 0)
        x1, y1 = min(int(allp[:, 0].max()) + 1, w), min(int(allp[:, 1].max()) + 1, h)
        if x0 >= x1 or y0 >= y1:
            return None
        local = np.zeros((y1 - y0, x1 - x0), np.uint8)
        for p in pts:  # one at a time: fillPoly would leave overlaps of several polygons unfilled
            cv2.fillPoly(local, [p - np.array([x0, y0], np.int32)], 1, lineType=cv2.LINE_8)
        return local.astype(bool), y0, x0

    def fill(self, polygons, color, cls: Optional[int], texture: Optional[np.ndarray] = None,
             within: Optional[int] = None, grain: float = 0.04) -> Optional[np.ndarray]:
        """Fill polygons with a colour (or a full-size texture); label them `cls` (None: keep labels).

        `texture` is a full-size float RGB image; without one the colour gets a little grain.
        `within` restricts the pixels to those already labelled so (details such as windows).
        Returns the full-size mask of the pixels written, or None when nothing was.
        """
        polygons = polygons if isinstance(polygons, list) else [polygons]
        if cls == OOD and self.instance:
            low = max(float(np.asarray(p, np.float64).reshape(-1, 2)[:, 1].max()) for p in polygons)
            self.bottoms[self.instance] = max(self.bottoms.get(self.instance, low), low)
        found = self._mask(polygons)
        if found is None:
            return None
        local, y0, x0 = found
        h, w = local.shape
        region = (slice(y0, y0 + h), slice(x0, x0 + w))
        if within is not None:
            local = local & (self.label[region] == within)
        if texture is not None:
            self.rgb[region][local] = texture[region][local]
        else:
            tint = 1.0 + grain * self.grain[region][local]
            self.rgb[region][local] = np.asarray(color, np.float32) * tint
        if cls is not None:
            self.label[region][local] = cls
            self.instances[region][local] = self.instance if cls == OOD else 0
        full = np.zeros(self.shape, bool)
        full[region] = local
        return full

    def shade(self, polygons, factor: float) -> None:
        """Darken (shadows) or brighten the pixels inside the polygons; labels unchanged."""
        found = self._mask(polygons if isinstance(polygons, list) else [polygons])
        if found is None:
            return
        local, y0, x0 = found
        h, w = local.shape
        self.rgb[y0: y0 + h, x0: x0 + w][local] *= factor


def ellipse(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0, start: float = 0.0,
            end: float = 360.0) -> np.ndarray:
    """Polygon of an ellipse (arc) in float pixels."""
    t = np.deg2rad(np.linspace(start, end, 24, endpoint=end - start < 360))
    a = np.deg2rad(angle)
    x, y = rx * np.cos(t), ry * np.sin(t)
    return np.stack([cx + x * np.cos(a) - y * np.sin(a), cy + x * np.sin(a) + y * np.cos(a)], 1)


def segment(x0: float, y0: float, x1: float, y1: float, width: float) -> np.ndarray:
    """A thick line as a quadrilateral (at least one pixel wide)."""
    d = np.array([x1 - x0, y1 - y0], np.float64)
    n = np.array([-d[1], d[0]]) / max(np.hypot(*d), 1e-6) * max(width, 1.0) / 2
    return np.array([[x0, y0] + n, [x1, y1] + n, [x1, y1] - n, [x0, y0] - n])


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
