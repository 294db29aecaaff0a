"""Objects of no Cityscapes class, in two disjoint families.

`training`: lost cargo (boxes, barrels, sacks, planks, suitcases; plain, shaded, blotched, dotted or labelled) --
only ever pasted as training outliers (the AnomalyMix stand-in of stage 2). `evaluation`: animal-like shapes,
tyres and debris with random textures (stripes, checks, noise) -- only ever placed in evaluation scenes and
demo drives. The demo therefore measures how the model flags obstacles it never saw in training, not how it
recalls the training shapes.

Every kind draws into a `Canvas` at a bottom-centre point with a height in pixels and labels its pixels
`OOD`. `sprite` renders one object alone (RGB + mask) for pasting.
"""
from __future__ import annotations

import random
from typing import Callable, Dict, Tuple

import numpy as np

from hypood_ros.synthetic.canvas import OOD, Canvas, ellipse, rect, segment

Draw = Callable[[Canvas, float, float, float, np.random.Generator], None]


def _color(rng: np.random.Generator, lo: float = 20, hi: float = 235) -> np.ndarray:
    return rng.uniform(lo, hi, 3).astype(np.float32)


# --- training family: lost cargo -------------------------------------------------------------------

def _surface(c: Canvas, rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """A full-size texture for cargo: flat, shaded, two-tone blotches, polka dots or printed labels.
    (Stripes, checks, fur and fine noise belong to the evaluation family.)"""
    import cv2

    h, w = c.shape
    kind = int(rng.integers(5))
    yy = np.linspace(1.15, 0.8, h, dtype=np.float32)[:, None, None]
    if kind == 0:
        return np.broadcast_to(base * (1 + 0.05 * c.grain), (h, w, 3)).astype(np.float32)
    if kind == 1:
        return (base * yy * (1 + 0.04 * c.grain)).astype(np.float32)
    other = _color(rng)
    if kind == 2:  # smooth blotches of two colours
        field = cv2.GaussianBlur(c.grain[:, :, 0], (0, 0), max(2.0, min(h, w) / 40))
        t = (field > 0).astype(np.float32)[:, :, None]
    elif kind == 3:  # polka dots
        period = float(rng.uniform(5, 14))
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        t = ((np.mod(x, period) - period / 2) ** 2 + (np.mod(y, period) - period / 2) ** 2
             < (period * 0.3) ** 2).astype(np.float32)[:, :, None]
    else:  # a printed label block on the base colour
        t = np.zeros((h, w, 1), np.float32)
        y0, x0 = int(rng.integers(0, max(h // 2, 1))), int(rng.integers(0, max(w // 2, 1)))
        t[y0: y0 + max(h // 6, 2), x0: x0 + max(w // 5, 2)] = 1
    return (base * (1 - t) + other * t).astype(np.float32)


def box(c: Canvas, x: float, y: float, s: float, rng: np.random.Generator) -> None:
    w, depth = s * rng.uniform(0.9, 1.8), s * rng.uniform(0.15, 0.35)
    base = rng.choice([np.array([176, 134, 86]), _color(rng)]).astype(np.float32)
    front = rect(x - w / 2, y - s, x + w / 2, y)
    top = np.array([[x - w / 2, y - s], [x + w / 2, y - s], [x + w / 2 - depth * 0.6, y - s - depth],
                    [x - w / 2 - depth * 0.6, y - s - depth]])
    c.fill(front, None, OOD, texture=_surface(c, rng, base))
    c.fill(top, base * 1.2, OOD)
    c.fill(rect(x - w / 2, y - s * 0.55, x + w / 2, y - s * 0.45), base * 0.6, None, within=OOD)


def barrel(c: Canvas, x: float, y: float, s: float, rng: np.random.Generator) -> None:
    w = s * rng.uniform(0.55, 0.8)
    base = rng.choice([np.array([30, 70, 170]), np.array([220, 110, 20]), _color(rng)]).astype(np.float32)
    c.fill([rect(x - w / 2, y - s, x + w / 2, y - w * 0.1), ellipse(x, y - w * 0.1, w / 2, w * 0.12)], None, OOD,
           texture=_surface(c, rng, base))
    c.fill(ellipse(x, y - s, w / 2, w * 0.15), base * 1.3, OOD)
    for k in (0.3, 0.65):
        c.fill(rect(x - w / 2, y - s * k - s * 0.04, x + w / 2, y - s * k + s * 0.04), base * 0.7, None, within=OOD)


def sack(c: Canvas, x: float, y: float, s: float, rng: np.random.Generator) -> None:
    w = s * rng.uniform(1.1, 1.7)
    t = np.linspace(0, 2 * np.pi, 28, endpoint=False)
    r = 1 + 0.12 * np.sin(3 * t + rng.uniform(0, 6)) + 0.06 * np.sin(5 * t + rng.uniform(0, 6))
    pts = np.stack([x + w / 2 * r * np.cos(t), y - s / 2 + s / 2 * r * np.sin(t)], 1)
    pts[:, 1] = np.minimum(pts[:, 1], y)
    base = rng.choice([np.array([200, 190, 150]), np.array([60, 90, 60]), _color(rng)]).astype(np.float32)
    c.fill(pts, None, OOD, texture=_surface(c, rng, base))
    c.fill(ellipse(x - w * 0.1, y - s * 0.65, w * 0.25, s * 0.15), base * 1.15, None, within=OOD)


def plank(c: Canvas, x: float, y: float, s: float, rng: np.random.Generator) -> None:
    """A board or pallet lying across the lane: long, low, with slats."""
    w, hgt = s * rng.uniform(2.0, 3.2), s * rng.uniform(0.25, 0.45)
    base = rng.choice([np.array([160, 120, 75]), np.array([200, 170, 120]), _color(rng)]).astype(np.float32)
    skew = rng.uniform(-0.3, 0.3) * hgt
    c.fill(np.array([[x - w / 2, y], [x + w / 2, y + skew], [x + w / 2, y + skew - hgt], [x - w / 2, y - hgt]]),
           None, OOD, texture=_surface(c, rng, base))
    for k in np.linspace(-0.4, 0.4, 4):
        c.fill(rect(x + k * w - w * 0.03, y - hgt, x + k * w + w * 0.03, y + skew * k), base * 0.6, None, within=OOD)


def suitcase(c: Canvas, x: float, y: float, s: float, rng: np.random.Generator) -> None:
    """A suitcase or bag: rounded body and a handle."""
    w = s * rng.uniform(0.7, 1.3)
    base = _color(rng)
    r = min(w, s) * 0.15
    body = [rect(x - w / 2 + r, y - s * 0.85, x + w / 2 - r, y), rect(x - w / 2, y - s * 0.85 + r, x + w / 2, y - r)]
    body += [ellipse(x + dx, y + dy, r, r) for dx in (-w / 2 + r, w / 2 - r) for dy in (-s * 0.85 + r, -r)]
    handle = segment(x - w * 0.2, y - s * 0.85, x - w * 0.15, y - s, max(s * 0.06, 1))
    handle2 = segment(x + w * 0.15, y - s, x + w * 0.2, y - s * 0.85, max(s * 0.06, 1))
    top = segment(x - w * 0.15, y - s, x + w * 0.15, y - s, max(s * 0.06, 1))
    c.fill(body, None, OOD, texture=_surface(c, rng, base))
    c.fill([handle, handle2, top], base * 0.5, OOD)


# --- evaluation family: wildlife and debris --------------------------------------------------------

def _fur(c: Canvas, rng: np.random.Generator) -> np.ndarray:
    base = rng.choice([np.array([120, 85, 50]), np.array([90, 90, 90]), np.array([230, 225, 215]),
                       np.array([35, 30, 28])]).astype(np.float32)
    h, w = c.shape
    return base * (1 + 0.18 * c.grain) * np.linspace(1.1, 0.85, h, dtype=np.float32)[:, None, None]


def animal(c: Canvas, x: float, y: float, s: float, rng: np.random.Generator) -> None:
    """A quadruped seen from the side: body, legs, neck, head, tail."""
    length = s * rng.uniform(1.3, 1.9)
    d = rng.choice([-1, 1])
    legs = s * rng.uniform(0.35, 0.5)
    body_y = y - legs - s * 0.2
    fur = _fur(c, rng)
    shapes = [ellipse(x, body_y, length / 2, s * 0.22)]
    for k in (-0.38, -0.25, 0.25, 0.38):
        lx = x + k * length
        shapes.append(segment(lx, body_y, lx + rng.uniform(-0.08, 0.08) * s, y, max(s * 0.08, 1)))
    nx = x + d * length * 0.45
    shapes.append(segment(nx, body_y, nx + d * s * 0.2, body_y - s * 0.35, s * 0.14))
    shapes.append(ellipse(nx + d * s * 0.28, body_y - s * 0.4, s * 0.16, s * 0.1, angle=20 * d))
    shapes.append(segment(x - d * length * 0.5, body_y, x - d * length * 0.62, body_y + s * 0.2, max(s * 0.05, 1)))
    c.fill(shapes, None, OOD, texture=fur)


def tyre(c: Canvas, x: float, y: float, s: float, rng: np.random.Generator) -> None:
    """A lost tyre, standing or lying: black ring with tread, grey rim."""
    if rng.random() < 0.5:  # standing
        rx, ry = s / 2 * rng.uniform(0.3, 0.6), s / 2
    else:  # lying flat: a wide, low ellipse
        rx, ry = s * rng.uniform(0.8, 1.1), s * 0.3
    cy = y - ry
    c.fill(ellipse(x, cy, rx, ry), np.array([28, 28, 30], np.float32), OOD, grain=0.12)
    c.fill(ellipse(x, cy, rx * 0.55, ry * 0.55), np.array([150, 150, 155], np.float32), OOD)
    c.fill(ellipse(x, cy, rx * 0.2, ry * 0.2), np.array([60, 60, 60], np.float32), OOD)
    for k in range(8):
        a = k * np.pi / 4
        c.fill(segment(x + rx * 0.75 * np.cos(a), cy + ry * 0.75 * np.sin(a), x + rx * 0.95 * np.cos(a),
                       cy + ry * 0.95 * np.sin(a), max(s * 0.03, 1)), np.array([55, 55, 55], np.float32), None,
               within=OOD)


def debris(c: Canvas, x: float, y: float, s: float, rng: np.random.Generator) -> None:
    """Irregular jagged piece with a random procedural texture (stripes, checks or coloured noise)."""
    n = int(rng.integers(7, 14))
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    w = s * rng.uniform(1.0, 2.2)
    r = rng.uniform(0.45, 1.0, n)
    pts = np.stack([x + w / 2 * r * np.cos(t), y - s / 2 + s / 2 * r * np.sin(t)], 1)
    pts[:, 1] = np.minimum(pts[:, 1], y)
    h, wid = c.shape
    yy, xx = np.mgrid[0:h, 0:wid].astype(np.float32)
    a, b = _color(rng), _color(rng)
    kind = rng.integers(3)
    period = max(s * rng.uniform(0.1, 0.3), 2.0)
    if kind == 0:
        pattern = (np.sin((xx * np.cos(rng.uniform(0, 3)) + yy) * np.pi / period) > 0).astype(np.float32)
    elif kind == 1:
        pattern = ((xx // period + yy // period) % 2).astype(np.float32)
    else:
        pattern = np.clip(0.5 + 0.5 * c.grain[:, :, 0], 0, 1)
    texture = a * pattern[:, :, None] + b * (1 - pattern[:, :, None])
    c.fill(pts, None, OOD, texture=texture)


FAMILIES: Dict[str, Dict[str, Draw]] = {
    "training": {"box": box, "barrel": barrel, "sack": sack, "plank": plank, "suitcase": suitcase},
    "evaluation": {"animal": animal, "tyre": tyre, "debris": debris},
}


def draw_anomaly(c: Canvas, family: str, x: float, y: float, s: float, rng: np.random.Generator) -> str:
    kinds = FAMILIES[family]
    name = list(kinds)[int(rng.integers(len(kinds)))]
    kinds[name](c, x, y, s, rng)
    return name


def sprite(family: str, size: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """One object of `family` alone: uint8 RGB and a bool mask, cropped to the object."""
    side = size * 3
    c = Canvas(side, side, rng)
    draw_anomaly(c, family, side / 2, side * 0.8, size, rng)
    mask = c.label == OOD
    ys, xs = np.nonzero(mask)
    crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return np.clip(c.rgb[crop], 0, 255).astype(np.uint8), mask[crop]


class SyntheticOutliers:
    """Source of training outliers for `AnomalyMix`: `(rng: random.Random) -> (rgb, mask)` of a training-family
    object, drawn fresh each time (so the outliers never repeat)."""

    family = "training"

    def __call__(self, rng: random.Random) -> Tuple[np.ndarray, np.ndarray]:
        gen = np.random.default_rng(rng.getrandbits(63))
        return sprite(self.family, int(gen.integers(24, 72)), gen)
