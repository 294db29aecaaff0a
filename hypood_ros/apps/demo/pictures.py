"""The demo's pictures: the contact sheet (camera, semantic map, score, mask, obstacles), the obstacle column's
boxes and range tags, the animated overlay."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from hypood_ros.apps.demo.recorded import Reported
from hypood_ros.apps.demo.settings import MISSED_COLOR, REPORTED_COLOR


def project(camera, pose, points) -> np.ndarray:
    """[N,3] base_frame points -> [N,2] pixels through the generated camera; NaN for points not in front of it."""
    optical = pose.to_optical(points)
    uv = np.full((len(optical), 2), np.nan)
    ahead = optical[:, 2] > 1e-3
    if ahead.any():
        uv[ahead] = camera.project(optical[ahead])
    return uv


def box_corners(box: Tuple[float, ...]) -> np.ndarray:
    """The 8 corners ([8,3], base_frame) of a reported obstacle's box."""
    x, y, z, yaw, depth, width, height = box
    c, s_ = np.cos(yaw), np.sin(yaw)
    local = np.array([[dx, dy, dz] for dx in (-depth / 2, depth / 2) for dy in (-width / 2, width / 2)
                      for dz in (-height / 2, height / 2)])
    return np.stack([x + c * local[:, 0] - s_ * local[:, 1], y + s_ * local[:, 0] + c * local[:, 1],
                     z + local[:, 2]], 1)


def contact_sheet(rows: List[Dict[str, np.ndarray]], path: Path) -> np.ndarray:
    """camera | semantic map | OOD score heat map | mask overlay | obstacles, one row per frame, titled."""
    import cv2

    from hypood_ros.images import write_image

    titles = ["camera", "semantic map", "OOD score (min-max)", "OOD mask overlay"]
    h, w = rows[0]["camera"].shape[:2]
    head = np.full((22, w * 5, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, title in enumerate(titles):
        cv2.putText(head, title, (i * w + 6, 16), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    x = 4 * w + 6
    for color, text in ((REPORTED_COLOR, "reported: range"), (MISSED_COLOR, "missed: true range")):
        cv2.rectangle(head, (x, 6), (x + 10, 16), color, -1)
        cv2.putText(head, text, (x + 14, 16), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        x += 14 + cv2.getTextSize(text, font, 0.5, 1)[0][0] + 16
    lines = [head]
    for row in rows:
        tiles = [row["camera"], row["color"], row["heat"], row["overlay"], row["obstacles"]]
        strip = np.concatenate(tiles, 1).copy()
        cv2.putText(strip, f"frame {row['index']}", (6, h - 8), font, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        lines.append(strip)
    sheet = np.concatenate(lines, 0)
    write_image(path, sheet)
    return sheet


def _tags(image: np.ndarray, tags: List[Tuple[str, Tuple[int, int, int, int], Tuple[int, int, int]]]) -> None:
    """Each (text, rectangle, colour) on a dark plate above its rectangle, else below it, else stacked further
    up or down, with a line to the rectangle: the first place inside the picture that no earlier plate covers
    (earlier tags win)."""
    import cv2

    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    h, w = image.shape[:2]
    taken: List[Tuple[int, int, int, int]] = []
    for text, (x0, y0, x1, y1), color in tags:
        (tw, th), base = cv2.getTextSize(text, font, scale, 1)
        pw, ph = tw + 2, th + base + 2
        x = int(np.clip(x0, 0, max(w - pw, 0)))
        tops = [y0 - 1 - ph, y1 + 1]
        tops += [top for k in range(1, 8) for top in (y0 - 1 - ph - k * (ph + 1), y1 + 1 + k * (ph + 1))]
        inside = [top for top in tops if 0 <= top <= h - ph]
        free = [top for top in inside
                if not any(x < bx1 and bx0 < x + pw and top < by1 and by0 < top + ph for bx0, by0, bx1, by1 in taken)]
        top = (free or inside or [int(np.clip(tops[0], 0, max(h - ph, 0)))])[0]
        taken.append((x, top, x + pw, top + ph))
        if top not in tops[:2]:  # stacked away from its rectangle
            below = top > y1
            anchor = int(np.clip(x + pw // 2, x0, x1))
            cv2.line(image, (x + pw // 2, top if below else top + ph - 1), (anchor, y1 if below else y0), color, 1)
        cv2.rectangle(image, (x, top), (x + pw - 1, top + ph - 1), (0, 0, 0), -1)
        cv2.putText(image, text, (x + 1, top + th + 1), font, scale, color, 1, cv2.LINE_AA)


def obstacle_picture(rgb: np.ndarray, camera, pose, reported: List[Reported],
                     missed: List[Tuple[Tuple[int, int, int, int], float]]) -> np.ndarray:
    """The camera picture with a box around each obstacle the node reported (its box marker projected through
    the generated camera) labelled with the reported range, and each generated obstacle the mask missed
    (`missed`: its pixels' bounding box and true range) outlined in another colour with its true range."""
    import cv2

    image = np.ascontiguousarray(rgb).copy()
    h, w = image.shape[:2]
    tags = []
    for obstacle in reported:
        corners = box_corners(obstacle.box) if obstacle.box else np.array([[obstacle.x, obstacle.y, 0.0]])
        uv = project(camera, pose, corners)
        uv = uv[np.isfinite(uv).all(1)]
        if not len(uv):
            continue
        x0, y0 = np.floor(uv.min(0)).astype(int)
        x1, y1 = np.ceil(uv.max(0)).astype(int)
        x0, x1 = int(np.clip(x0, 0, w - 1)), int(np.clip(max(x1, x0 + 2), 0, w - 1))
        y0, y1 = int(np.clip(y0, 0, h - 1)), int(np.clip(max(y1, y0 + 2), 0, h - 1))
        tags.append((f"{obstacle.range:.1f} m", (x0, y0, x1, y1), REPORTED_COLOR))
    tags += [(f"{true_range:.1f} m", rect, MISSED_COLOR) for rect, true_range in missed]
    for _, rect, color in tags:
        cv2.rectangle(image, rect[:2], rect[2:], color, 1)
    _tags(image, tags)
    return image


def write_gif(frames: List[np.ndarray], path: Path, fps: float) -> None:
    from PIL import Image as PILImage

    images = [PILImage.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0,
                   optimize=False)


def _pick_rows(anomaly_frames: List[int], all_frames: int, count: int) -> List[int]:
    pool = anomaly_frames or list(range(all_frames))
    picks = np.linspace(0, len(pool) - 1, min(count, len(pool))).round().astype(int)
    return [pool[i] for i in picks]
