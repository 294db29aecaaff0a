"""Procedural street scenes seen from a forward-facing vehicle camera, with Cityscapes train ids.

A `Street` is a world drawn from a seed: a straight road along +z with lanes, curbs, sidewalks,
terrain, buildings, fences, walls, poles with signs and lights, trees, parked and moving vehicles,
pedestrians and riders, and optionally anomalies on the road. `render(street, z)` draws the view of a
pinhole camera at distance `z` along the road (painter's order, far to near) and returns the picture,
its train-id labels (255 = ego vehicle / nothing) and, separately, the anomaly mask; `render_view` adds
each anomaly's own pixels (an instance map) and where it stands relative to the camera. Nothing here is
random at render time except what the street's seed fixed, so a (seed, z) pair is one picture.

Where an anomaly stands. It lies at (x, z) on the road; `draw_anomaly` draws it as an upright flat
silhouette whose bottom centre is the projection of that ground point, (x, 0, z), scaled for the distance
z - camera z. Every pixel of it is therefore at one forward distance: no part is nearer along the road
than its ground point. Animals (on their legs) and tyres (standing or lying, at the rim's lowest point)
reach down to it; the jagged debris reaches down only as far as its lowest random outline point, so it
often ends some pixels above it, and the picture then shows it standing farther away. `Anomaly` records
the ground point as drawn: the placed one, or for a drawing that ends above it the point on the same ray
at the height of its lowest point (`hover`: how many pixels higher).
Its true range is hypot(dx, dz) of that point, measured on the road from the point below the camera.
Across the road an object is as wide as its shape, so the end of its ground line nearer the camera's
axis is nearer than its centre by up to (half width) * |dx| / range: a few per cent for objects beside
the lane, none for those ahead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, NamedTuple, Optional, Tuple

import numpy as np

from hypood_ros.synthetic.anomalies import draw_anomaly
from hypood_ros.synthetic.canvas import OOD, VOID, Canvas, ellipse, rect, segment

# Cityscapes train ids.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY = range(11)
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(11, 19)

NEAR = 1.5  # metres: nothing nearer than this is drawn
FAR = 220.0
TIMES = {  # sky top, sky horizon, light gain, light tint
    "day": ((70, 130, 215), (185, 210, 235), 1.0, (1.0, 1.0, 1.0)),
    "overcast": ((150, 155, 165), (200, 202, 206), 0.85, (0.97, 0.98, 1.02)),
    "dusk": ((40, 50, 110), (235, 140, 80), 0.6, (1.1, 0.9, 0.8)),
    "morning": ((110, 150, 210), (240, 215, 170), 0.9, (1.06, 1.0, 0.92)),
}


@dataclass
class Thing:
    """Something standing at lateral position x (metres, road centre = 0) and distance z along the road."""
    kind: str
    x: float
    z: float
    size: Tuple[float, ...]
    color: np.ndarray
    speed: float = 0.0  # m/s along +z
    seed: int = 0  # fixes the details drawn at render time (anomaly shapes, textures)
    side: int = 1


@dataclass
class Street:
    seed: int
    road_half: float
    sidewalk: Tuple[float, float]  # width left, right
    building_x: Tuple[float, float]
    camera_x: float
    camera_h: float
    horizon: float  # fraction of the image height
    time: str
    sun: float  # lateral direction of shadows, -1..1
    hood: bool
    blur: float
    noise: float
    colors: dict
    buildings: List[Tuple[int, float, float, float, np.ndarray]] = field(default_factory=list)
    things: List[Thing] = field(default_factory=list)
    texture: Optional[np.ndarray] = None


def make_street(seed: int, length: float = 400.0, anomalies: Optional[str] = None, anomaly_count: int = 0,
                anomaly_range: Tuple[float, float] = (8.0, 40.0)) -> Street:
    """A random street of `length` metres; with `anomalies` (a family name), `anomaly_count` objects of it
    lie on the road between `anomaly_range` metres (along z)."""
    rng = np.random.default_rng(seed)
    road_half = float(rng.uniform(3.5, 6.0))
    sidewalk = (float(rng.uniform(1.5, 4.0)), float(rng.uniform(1.5, 4.0)))
    building_x = (road_half + sidewalk[0] + float(rng.uniform(0, 6)),
                  road_half + sidewalk[1] + float(rng.uniform(0, 6)))
    st = Street(
        seed=seed, road_half=road_half, sidewalk=sidewalk, building_x=building_x,
        camera_x=road_half / 2 + float(rng.uniform(-0.4, 0.4)), camera_h=float(rng.uniform(1.2, 1.7)),
        horizon=float(rng.uniform(0.36, 0.48)), time=str(rng.choice(list(TIMES))), sun=float(rng.uniform(-1, 1)),
        hood=bool(rng.random() < 0.5), blur=float(rng.uniform(0, 0.9)), noise=float(rng.uniform(1, 6)),
        colors=dict(road=rng.uniform(80, 125) * np.array([1, 1, 1.03]), sidewalk=rng.uniform(140, 185, 3),
                    terrain=np.array([rng.uniform(90, 140), rng.uniform(120, 160), rng.uniform(50, 80)]),
                    curb=rng.uniform(160, 200) * np.ones(3)),
    )
    tex = rng.standard_normal((128, 128)).astype(np.float32)
    import cv2

    st.texture = cv2.GaussianBlur(tex, (0, 0), 1.2) * 2.5
    for side in (-1, 1):
        z = float(rng.uniform(-20, 10))
        while z < length + FAR:
            size = float(rng.uniform(8, 35))
            if rng.random() < 0.85:
                st.buildings.append((side, z, z + size, float(rng.uniform(6, 28)), rng.uniform(70, 200, 3)))
            z += size + float(rng.uniform(0, 8))
        edge = road_half + sidewalk[0 if side < 0 else 1]
        z = float(rng.uniform(0, 20))
        while z < length + FAR:  # poles, with a sign or a traffic light
            kind = str(rng.choice(["sign", "sign", "light", "pole"]))
            st.things.append(Thing(kind, side * (road_half + 0.5), z, (float(rng.uniform(3, 6)),),
                                   _choice_color(rng, kind), side=side))
            z += float(rng.uniform(20, 45))
        z = float(rng.uniform(0, 15))
        while z < length + FAR:  # trees and hedges on the terrain strip
            bx = building_x[0 if side < 0 else 1]
            if bx - edge > 1.2 or rng.random() < 0.3:
                x = side * float(rng.uniform(edge + 0.5, max(edge + 0.6, bx - 0.5)))
                if rng.random() < 0.75:
                    st.things.append(Thing("tree", x, z, (float(rng.uniform(4, 9)), float(rng.uniform(1.5, 3.5))),
                                           np.array([rng.uniform(30, 80), rng.uniform(90, 140), rng.uniform(30, 60)]),
                                           side=side))
                else:
                    st.things.append(Thing("hedge", x, z, (float(rng.uniform(0.8, 1.6)), float(rng.uniform(3, 8))),
                                           np.array([rng.uniform(40, 70), rng.uniform(90, 120), 40.0]), side=side))
            z += float(rng.uniform(6, 25))
        z = float(rng.uniform(0, 30))
        while z < length + FAR:  # fence or wall segments at the back of the sidewalk
            seg = float(rng.uniform(5, 25))
            kind = "fence" if rng.random() < 0.6 else "wall"
            st.things.append(Thing(kind, side * edge, z, (float(rng.uniform(0.7, 1.5)), seg),
                                   rng.uniform(60, 170, 3), side=side))
            z += seg + float(rng.uniform(15, 60))
        z = float(rng.uniform(0, 10))
        while z < length + FAR:  # pedestrians
            st.things.append(Thing("person", side * float(rng.uniform(road_half + 0.6, edge - 0.3)), z,
                                   (float(rng.uniform(1.55, 1.95)),), rng.uniform(20, 230, 3),
                                   speed=float(rng.uniform(-1.4, 1.4)), seed=int(rng.integers(1 << 30)), side=side))
            z += float(rng.uniform(4, 30))
    z = float(rng.uniform(6, 20))
    while z < length + FAR:  # traffic: our lane (ahead, same direction), oncoming lane, parked at the curb
        where = rng.random()
        kind = str(rng.choice(["car", "car", "car", "truck", "bus", "bicycle", "motorcycle"]))
        if where < 0.4:
            x, speed = road_half / 2 + float(rng.uniform(-0.3, 0.3)), float(rng.uniform(6, 12))
        elif where < 0.75:
            x, speed = -road_half / 2 + float(rng.uniform(-0.3, 0.3)), -float(rng.uniform(5, 12))
        else:
            kind = "car"
            x, speed = (road_half - 1.1) * (1 if rng.random() < 0.5 else -1), 0.0
        if kind in ("bicycle", "motorcycle"):
            x = (road_half - 0.8) * np.sign(x)
            speed = float(rng.uniform(3, 8)) * (1 if x > 0 else -1)
        dims = {"car": (1.8, 1.5, 4.3), "truck": (2.5, 3.3, 8.0), "bus": (2.6, 3.2, 12.0),
                "bicycle": (0.6, 1.8, 1.8), "motorcycle": (0.8, 1.8, 2.1)}[kind]
        scale = float(rng.uniform(0.92, 1.08))
        st.things.append(Thing(kind, x, z, tuple(d * scale for d in dims), rng.uniform(15, 235, 3), speed=speed,
                               seed=int(rng.integers(1 << 30))))
        z += float(rng.uniform(12, 45))
    if anomalies:
        lo, hi = anomaly_range
        zs = np.sort(rng.uniform(lo, hi, anomaly_count))
        for z in zs:
            x = float(rng.uniform(-road_half + 0.6, road_half - 0.6))
            # keep them out of vehicles: drop traffic near the anomaly
            st.things = [t for t in st.things if not (t.kind in VEHICLES and abs(t.z - z) < 14 and abs(t.x - x) < 3)]
            st.things.append(Thing("anomaly:" + anomalies, x, float(z), (float(rng.uniform(0.5, 1.6)),),
                                   np.zeros(3), seed=int(rng.integers(1 << 30))))
    return st


VEHICLES = ("car", "truck", "bus", "bicycle", "motorcycle")


def _choice_color(rng: np.random.Generator, kind: str) -> np.ndarray:
    if kind == "sign":
        return np.array(rng.choice([[200, 30, 30], [30, 70, 190], [230, 200, 30], [240, 240, 240]]), np.float64)
    return np.array([50, 50, 50], np.float64)


class Camera:
    def __init__(self, st: Street, z: float, height: int, width: int) -> None:
        self.x, self.z, self.h = st.camera_x, z, st.camera_h
        self.f = 0.85 * width
        self.cx = width / 2
        self.cy = st.horizon * height

    def project(self, x, y, z):
        """World (lateral x, height y, distance z) -> pixel (u, v); z relative depth must be >= NEAR."""
        d = np.asarray(z, np.float64) - self.z
        return self.cx + self.f * (np.asarray(x) - self.x) / d, self.cy + self.f * (self.h - np.asarray(y)) / d

    def quad(self, points) -> Optional[np.ndarray]:
        """3-D polygon clipped to the near plane, projected; None when entirely behind it."""
        pts = np.asarray(points, np.float64)
        depth = pts[:, 2] - self.z - NEAR
        out = []
        for i in range(len(pts)):
            a, b = pts[i], pts[(i + 1) % len(pts)]
            da, db = depth[i], depth[(i + 1) % len(pts)]
            if da >= 0:
                out.append(a)
            if (da >= 0) != (db >= 0):
                out.append(a + (b - a) * (da / (da - db)))
        if len(out) < 3:
            return None
        out = np.asarray(out)
        u, v = self.project(out[:, 0], out[:, 1], out[:, 2])
        return np.stack([u, v], 1)


def _ground(c: Canvas, st: Street, cam: Camera) -> None:
    """Road, lane markings, curbs, sidewalks and terrain, per pixel (texture anchored in the world)."""
    h, w = c.shape
    top = int(np.floor(cam.cy)) + 1
    ys = np.arange(top, h, dtype=np.float64) + 0.5
    depth = cam.f * cam.h / (ys - cam.cy)
    depth = np.minimum(depth, FAR)[:, None]
    xs = (np.arange(w, dtype=np.float64) + 0.5 - cam.cx)[None, :]
    x = cam.x + xs * depth / cam.f
    zw = cam.z + depth
    ax = np.abs(x)
    left = x < 0
    walk = np.where(left, st.sidewalk[0], st.sidewalk[1])
    label = np.full(x.shape, TERRAIN, np.uint8)
    label[ax < st.road_half + walk] = SIDEWALK
    label[ax < st.road_half] = ROAD
    cols = np.empty(x.shape + (3,), np.float32)
    cols[:] = st.colors["terrain"]
    cols[label == SIDEWALK] = st.colors["sidewalk"]
    cols[(label == SIDEWALK) & (ax < st.road_half + 0.25)] = st.colors["curb"]
    cols[label == ROAD] = st.colors["road"]
    r = st.road_half
    marks = (label == ROAD) & (((np.abs(x) < 0.08) & (np.mod(zw, 9.0) < 3.0)) | (np.abs(ax - (r - 0.3)) < 0.08))
    cols[marks] = (225, 225, 220)
    tex = st.texture[(np.floor(x * 6) % 128).astype(int), (np.floor(zw * 6) % 128).astype(int)]
    fade = np.clip(12.0 / depth, 0.2, 1.0)  # far texture averages out
    cols *= (1 + 0.06 * tex * fade)[..., None]
    # building shadows across part of the street, from the sun's side
    if st.sun != 0:
        shadow = (x * np.sign(st.sun)) > (st.road_half + 2.0 - 6.0 * abs(st.sun))
        cols[shadow] *= 0.65
    c.rgb[top:] = cols
    c.label[top:] = label


def _sky(c: Canvas, st: Street, cam: Camera) -> None:
    h, w = c.shape
    top, horizon, _, _ = TIMES[st.time]
    t = np.clip(np.arange(h, dtype=np.float32) / max(cam.cy, 1), 0, 1)[:, None]
    c.rgb[:] = (np.asarray(top, np.float32) * (1 - t) + np.asarray(horizon, np.float32) * t)[:, None, :]
    c.label[:] = SKY


def _skyline(c: Canvas, st: Street, cam: Camera) -> None:
    """Distant trees and hills along the horizon (vegetation), behind the buildings."""
    h, w = c.shape
    rng = np.random.default_rng(st.seed + 7)
    xs = np.linspace(0, w, 40)
    heights = np.abs(np.cumsum(rng.normal(0, 2.0, 40))) + rng.uniform(2, 10)
    pts = np.concatenate([np.stack([xs, cam.cy - heights * h / 240], 1), [[w, cam.cy + 1], [0, cam.cy + 1]]])
    c.fill(pts, (60, 90, 60), VEGETATION)


def _building(c: Canvas, st: Street, cam: Camera, side: int, z0: float, z1: float, height: float, color) -> None:
    bx = side * st.building_x[0 if side < 0 else 1]
    face = cam.quad([(bx, 0, z0), (bx, height, z0), (bx, height, z1), (bx, 0, z1)])
    if face is None:
        return
    c.fill(face, color, BUILDING)
    front = cam.quad([(bx, 0, z0), (bx, height, z0), (bx + side * 12, height, z0), (bx + side * 12, 0, z0)])
    if front is not None and z0 > cam.z + NEAR:
        c.fill(front, np.asarray(color) * 0.8, BUILDING)
    lit = st.time == "dusk"
    window = np.array([240, 210, 140]) if lit else np.asarray(color) * 0.45 + np.array([10, 20, 35])
    for yy in np.arange(2.0, height - 1.5, 3.2):
        for zz in np.arange(z0 + 1.0, z1 - 1.6, 3.0):
            if zz - cam.z < NEAR or zz - cam.z > 120:
                continue
            q = cam.quad([(bx, yy, zz), (bx, yy + 1.5, zz), (bx, yy + 1.5, zz + 1.2), (bx, yy, zz + 1.2)])
            if q is not None:
                c.fill(q, window, None, within=BUILDING)


def _shadow(c: Canvas, st: Street, cam: Camera, t: Thing, width: float, length: float) -> None:
    x0, x1 = t.x - width / 2, t.x + width / 2 + st.sun * width * 0.6
    q = cam.quad([(x0, 0, t.z - 0.3), (x1, 0, t.z - 0.3), (x1, 0, t.z + length), (x0, 0, t.z + length)])
    if q is not None:
        c.shade(q, 0.55)


def _box(c: Canvas, cam: Camera, x: float, z: float, w: float, h: float, length: float, color, cls: int,
         y0: float = 0.0) -> Optional[np.ndarray]:
    """A vertical box: the side facing the camera axis and the face nearest the camera."""
    side = -1 if x > cam.x else 1  # which long side we see
    sx = x + side * w / 2
    if abs(x - cam.x) > w / 2:
        q = cam.quad([(sx, y0, z), (sx, y0 + h, z), (sx, y0 + h, z + length), (sx, y0, z + length)])
        if q is not None:
            c.fill(q, np.asarray(color) * 0.8, cls)
    if h < cam.h:  # the top is visible from above
        q = cam.quad([(x - w / 2, y0 + h, z), (x + w / 2, y0 + h, z), (x + w / 2, y0 + h, z + length),
                      (x - w / 2, y0 + h, z + length)])
        if q is not None:
            c.fill(q, np.asarray(color) * 1.1, cls)
    return cam.quad([(x - w / 2, y0, z), (x - w / 2, y0 + h, z), (x + w / 2, y0 + h, z), (x + w / 2, y0, z)])


def _vehicle(c: Canvas, st: Street, cam: Camera, t: Thing, z: float) -> None:
    w, h, length = t.size
    cls = {"car": CAR, "truck": TRUCK, "bus": BUS}[t.kind]
    _shadow(c, st, cam, Thing(t.kind, t.x, z, t.size, t.color), w * 1.05, length)
    if t.kind == "truck":  # cargo box behind a lower cab
        body = _box(c, cam, t.x, z, w, h, length * 0.72, t.color, cls, 0.4)
        _box(c, cam, t.x, z + length * 0.72, w * 0.95, h * 0.75, length * 0.28, t.color * 0.7 + 40, cls, 0.4)
    else:
        body = _box(c, cam, t.x, z, w, h * (0.55 if t.kind == "car" else 1.0), length, t.color, cls,
                    0.25 if t.kind == "car" else 0.3)
    if body is None:
        return
    c.fill(body, t.color, cls)
    (left, top_), (r, bottom) = body.min(0), body.max(0)
    bw, bh = r - left, bottom - top_
    if t.kind == "car":  # cabin with windows above the body
        cab_top = top_ - bh * 0.75
        cabin = [[left + bw * 0.1, top_], [r - bw * 0.1, top_], [r - bw * 0.2, cab_top], [left + bw * 0.2, cab_top]]
        c.fill(np.array(cabin),
               t.color * 0.95, cls)
        c.fill(np.array([[left + bw * 0.16, top_ - bh * 0.08], [r - bw * 0.16, top_ - bh * 0.08],
                         [r - bw * 0.23, cab_top + bh * 0.08], [left + bw * 0.23, cab_top + bh * 0.08]]),
               (40, 50, 60), cls)
    elif t.kind == "bus":
        c.fill(rect(left + bw * 0.08, top_ + bh * 0.1, r - bw * 0.08, top_ + bh * 0.45), (40, 55, 70), cls)
    lamp = (200, 20, 20) if t.speed >= 0 else (250, 245, 210)
    for lx in (left + bw * 0.05, r - bw * 0.2):
        c.fill(rect(lx, top_ + bh * 0.35, lx + bw * 0.15, top_ + bh * 0.55), lamp, cls)
    wheel = max(bh * 0.28, 1.5)
    for lx in (left + bw * 0.08, r - bw * 0.08 - wheel):
        c.fill(rect(lx, bottom - 1, lx + wheel, bottom + wheel * 0.6), (20, 20, 20), cls)


def _person(c: Canvas, cam: Camera, x: float, z: float, height: float, color, cls: int, rng, seated: bool = False,
            y0: float = 0.0) -> None:
    u, v = cam.project(x, y0, z)
    s = cam.f / (z - cam.z)  # pixels per metre
    hp = height * s * (0.7 if seated else 1.0)
    hw = 0.45 * s
    pants = rng.uniform(20, 120, 3)
    head_r = max(hp * 0.07, 1.0)
    shapes = [(ellipse(u, v - hp + head_r, head_r, head_r * 1.15), (225, 180, 150) * rng.uniform(0.5, 1.1, 3))]
    shapes.append((rect(u - hw / 2, v - hp + 2 * head_r, u + hw / 2, v - hp * (0.25 if seated else 0.48)), color))
    if not seated:
        step = rng.uniform(-0.15, 0.15) * hw
        shapes.append((segment(u - hw * 0.22, v - hp * 0.5, u - hw * 0.25 - step, v, max(hw * 0.35, 1)), pants))
        shapes.append((segment(u + hw * 0.22, v - hp * 0.5, u + hw * 0.25 + step, v, max(hw * 0.35, 1)), pants))
    for side in (-1, 1):
        shapes.append((segment(u + side * hw / 2, v - hp + 2.3 * head_r, u + side * hw * 0.65,
                               v - hp * (0.3 if seated else 0.5), max(hw * 0.2, 1)), color * 0.9))
    for poly, col in shapes:
        c.fill(poly, col, cls)


def _two_wheeler(c: Canvas, st: Street, cam: Camera, t: Thing, z: float, rng) -> None:
    w, h, length = t.size
    cls = BICYCLE if t.kind == "bicycle" else MOTORCYCLE
    s = cam.f / (z - cam.z)
    u, v = cam.project(t.x, 0, z)
    r = 0.33 * s
    # seen from behind: one wheel in front of the other, a frame above
    c.fill(rect(u - max(0.07 * s, 1), v - 2 * r, u + max(0.07 * s, 1), v), (25, 25, 25), cls)
    if t.kind == "motorcycle":
        c.fill(rect(u - 0.3 * s, v - 1.0 * s, u + 0.3 * s, v - 0.45 * s), t.color, cls)
    c.fill(segment(u - 0.3 * s, v - 1.0 * s, u + 0.3 * s, v - 1.0 * s, max(0.05 * s, 1)), (60, 60, 60), cls)
    _person(c, cam, t.x, z, 1.75, rng.uniform(20, 230, 3), RIDER, rng, seated=True, y0=0.75)


def _pole(c: Canvas, cam: Camera, t: Thing) -> None:
    height = t.size[0]
    s = cam.f / (t.z - cam.z)
    u, v = cam.project(t.x, 0, t.z)
    c.fill(segment(u, v, u, v - height * s, max(0.15 * s, 1)), (110, 110, 115), POLE)
    top = v - height * s
    if t.kind == "sign":
        r = max(0.35 * s, 1.0)
        c.fill(ellipse(u, top + r, r, r), t.color, SIGN)
        c.fill(ellipse(u, top + r, r * 0.6, r * 0.6), (240, 240, 240), None, within=SIGN)
    elif t.kind == "light":
        bw, bh = max(0.3 * s, 1), max(0.9 * s, 2)
        c.fill(rect(u - bw, top, u + bw, top + bh), (35, 35, 35), LIGHT)
        on = int((t.z * 7) % 3)
        for k, col in enumerate([(230, 40, 30), (240, 180, 30), (40, 220, 90)]):
            lit = col if k == on else tuple(v_ * 0.3 for v_ in col)
            c.fill(ellipse(u, top + bh * (k + 0.5) / 3, bw * 0.6, bw * 0.6), lit, None, within=LIGHT)


def _tree(c: Canvas, cam: Camera, t: Thing, rng) -> None:
    height, crown = t.size
    s = cam.f / (t.z - cam.z)
    u, v = cam.project(t.x, 0, t.z)
    c.fill(segment(u, v, u, v - height * 0.6 * s, max(0.25 * s, 1)), (80, 60, 40), VEGETATION)
    blobs = [ellipse(u + rng.uniform(-0.5, 0.5) * crown * s, v - (height - crown * rng.uniform(0.3, 0.9)) * s,
                     crown * s * rng.uniform(0.5, 0.8), crown * s * rng.uniform(0.5, 0.8)) for _ in range(4)]
    c.fill(blobs, t.color, VEGETATION, grain=0.15)


def _along(c: Canvas, st: Street, cam: Camera, t: Thing) -> None:
    """Hedges, fences and walls: vertical strips parallel to the road."""
    height, seg = t.size
    z0, z1 = max(t.z, cam.z + NEAR), t.z + seg
    if z1 <= z0:
        return
    x = t.x
    if t.kind == "hedge":
        q = cam.quad([(x, 0, z0), (x, height, z0), (x, height, z1), (x, 0, z1)])
        if q is not None:
            c.fill(q, t.color, VEGETATION, grain=0.15)
        return
    if t.kind == "wall":
        q = cam.quad([(x, 0, z0), (x, height, z0), (x, height, z1), (x, 0, z1)])
        if q is not None:
            c.fill(q, t.color * 0.5 + 80, WALL)
        return
    for y in (height * 0.3, height):  # fence: rails and posts
        u0, v0 = cam.project(x, y, z0)
        u1, v1 = cam.project(x, y, z1)
        c.fill(segment(u0, v0, u1, v1, max(0.06 * cam.f / (z0 - cam.z), 1)), t.color, FENCE)
    for zz in np.arange(np.ceil(z0), z1, 1.5):
        u0, v0 = cam.project(x, 0, zz)
        u1, v1 = cam.project(x, height, zz)
        c.fill(segment(u0, v0, u1, v1, max(0.06 * cam.f / (zz - cam.z), 1)), t.color, FENCE)


def _hood(c: Canvas, st: Street) -> None:
    h, w = c.shape
    top = h * 0.9
    pts = np.array([[0, h], [0, top + h * 0.04], [w * 0.2, top], [w * 0.8, top], [w, top + h * 0.04], [w, h]])
    c.fill(pts, (35, 38, 45), VOID)
    c.fill(np.array([[w * 0.25, top + 1], [w * 0.75, top + 1], [w * 0.7, top + h * 0.03], [w * 0.3, top + h * 0.03]]),
           (70, 75, 85), None, within=VOID)


@dataclass(frozen=True)
class Anomaly:
    """An anomaly drawn in one view: where it stands relative to the camera (its ground point as drawn,
    see the module's notes), and its pixels' id in the view's instance map."""
    id: int  # 1, 2, ... in the street's order of anomalies: the same in every view of the street
    shape: str  # what was drawn: animal, tyre, debris, ... (`anomalies.FAMILIES`)
    dx: float  # metres to the right of the camera (thing x - camera x for a drawing that reaches the road)
    dz: float  # metres ahead of the camera (thing z - camera z, idem)
    u: float  # the ground point in the picture (pixel centres at integers, as camera_info's)
    v: float
    pixels: int  # visible pixels (nearer things and the ego vehicle's hood hide the rest)
    hover: float = 0.0  # pixels between the placed ground point and the drawing's lowest point (0: it reaches it)
    contact_visible: bool = True  # the drawing's lowest row is still seen (not under the hood or outside)

    @property
    def range(self) -> float:
        """Metres on the road from the point below the camera to the anomaly's ground point."""
        return math.hypot(self.dx, self.dz)


class View(NamedTuple):
    rgb: np.ndarray  # uint8 [H,W,3]
    label: np.ndarray  # train ids uint8 [H,W] (255 on the ego vehicle and on anomalies)
    ood: np.ndarray  # bool [H,W], every anomaly pixel
    instances: np.ndarray  # uint16 [H,W]: the anomaly id of each OOD pixel, 0 elsewhere (non-zero == ood)
    anomalies: Tuple[Anomaly, ...]  # the anomalies drawn (at least 2 pixels tall), nearest last


def _finish(c: Canvas, st: Street, cam: Camera, rng) -> np.ndarray:
    import cv2

    _, _, gain, tint = TIMES[st.time]
    rgb = c.rgb * (gain * np.asarray(tint, np.float32))
    sky = c.label == SKY
    rgb[sky] = c.rgb[sky]  # the sky keeps its own colours
    if st.blur > 0.3:
        rgb = cv2.GaussianBlur(rgb, (0, 0), st.blur)
    rgb = rgb + rng.normal(0, st.noise, rgb.shape).astype(np.float32)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def _lowest_row(pixels: np.ndarray) -> int:
    rows = np.flatnonzero(pixels.any(axis=1))
    return int(rows[-1]) if rows.size else -1


def _as_drawn(k: int, shape: str, dx: float, dz: float, u: float, v: float, bottom: float, lowest: int,
              visible: int, pixels: np.ndarray, cam: Camera) -> Anomaly:
    """The anomaly's record. A drawing whose lowest point (`bottom`, pixels) lies above its ground point's row
    `v` stands, as the picture shows it, where that point meets the road: on the same ray, farther away.
    `lowest`: its lowest row in the picture when drawn; `pixels`: where it is still seen."""
    drawn_v = min(v, bottom)
    if cam.cy < drawn_v < v:
        scale = (v - cam.cy) / (drawn_v - cam.cy)
        dx, dz = dx * scale, dz * scale
    else:
        drawn_v = v
    # its lowest point is in the picture (not below it, not beside it) and nothing nearer covers that row
    seen = visible > 0 and lowest >= round(drawn_v) - 1 and _lowest_row(pixels) >= lowest
    return Anomaly(k, shape, float(dx), float(dz), u, float(drawn_v), visible, float(v - drawn_v), bool(seen))


def render(st: Street, z: float, height: int = 240, width: int = 480, t: float = 0.0,
           effects: bool = True, skip_anomalies: bool = False) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The camera's view at distance `z` along the street and time `t` (seconds, moves the traffic).

    Returns uint8 RGB [H,W,3], train ids uint8 [H,W] (255 on the ego vehicle and on anomalies) and the
    anomaly mask bool [H,W]. `effects=False` leaves out lighting, blur and noise (exact pixels for tests).
    """
    return render_view(st, z, height, width, t, effects, skip_anomalies)[:3]


def render_view(st: Street, z: float, height: int = 240, width: int = 480, t: float = 0.0,
                effects: bool = True, skip_anomalies: bool = False) -> View:
    """`render`, and each anomaly's pixels and position (`View`); the same picture and labels."""
    cam = Camera(st, z, height, width)
    c = Canvas(height, width, np.random.default_rng([st.seed, int(round(z * 1000)) & 0x7FFFFFFF]))
    _sky(c, st, cam)
    _skyline(c, st, cam)
    _ground(c, st, cam)
    for side, z0, z1, bh, color in sorted(st.buildings, key=lambda b: -max(b[1], z)):
        if z1 > z + NEAR and z0 < z + FAR:
            _building(c, st, cam, side, z0, z1, bh, color)
    anomaly_ids = {id(thing): k for k, thing in
                   enumerate((th for th in st.things if th.kind.startswith("anomaly:")), start=1)}
    placed, drawn = [], []
    for thing in st.things:
        tz = thing.z + thing.speed * t
        near = max(tz, z + NEAR) if thing.kind in ("fence", "wall", "hedge") else tz
        if near - z < NEAR + 0.5 or near - z > FAR or (skip_anomalies and thing.kind.startswith("anomaly")):
            continue
        placed.append((near, tz, thing))
    for _, tz, thing in sorted(placed, key=lambda p: -p[0]):
        rng = np.random.default_rng(thing.seed)
        if thing.kind in ("car", "truck", "bus"):
            _vehicle(c, st, cam, thing, tz)
        elif thing.kind in ("bicycle", "motorcycle"):
            _two_wheeler(c, st, cam, thing, tz, rng)
        elif thing.kind == "person":
            _person(c, cam, thing.x, tz, thing.size[0], thing.color, PERSON, rng)
        elif thing.kind in ("sign", "light", "pole"):
            _pole(c, cam, thing)
        elif thing.kind == "tree":
            _tree(c, cam, thing, rng)
        elif thing.kind in ("hedge", "fence", "wall"):
            _along(c, st, cam, thing)
        elif thing.kind.startswith("anomaly:"):
            u, v = cam.project(thing.x, 0, tz)
            size = thing.size[0] * cam.f / (tz - z)
            if size >= 2:
                k = c.instance = anomaly_ids[id(thing)]
                shape = draw_anomaly(c, thing.kind.split(":", 1)[1], float(u), float(v), float(size), rng)
                c.instance = 0
                drawn.append((k, shape, thing.x - cam.x, tz - z, float(u), float(v), c.bottoms.get(k, float(v)),
                              _lowest_row(c.instances == k)))
    if st.hood:
        _hood(c, st)
    ood = c.label == OOD
    label = c.label.copy()
    label[ood] = VOID
    visible = np.bincount(c.instances.ravel(), minlength=len(anomaly_ids) + 1)
    anomalies = tuple(_as_drawn(k, shape, dx, dz, u, v, bottom, lowest, int(visible[k]), c.instances == k, cam)
                      for k, shape, dx, dz, u, v, bottom, lowest in drawn)
    if not effects:
        rgb = np.clip(c.rgb + 0.5, 0, 255).astype(np.uint8)
    else:
        rgb = _finish(c, st, cam, np.random.default_rng([st.seed, 99, int(round(z * 1000)) & 0x7FFFFFFF]))
    return View(rgb, label, ood, c.instances, anomalies)
