"""Encoded image bytes or files -> HxWx3 uint8 RGB, with one clear FrameError for anything unusable.

Accepted and converted: 8-bit and 16-bit (scaled to 8 bits), grayscale (replicated to RGB) and
RGBA/BGRA (alpha dropped). Refused: undecodable or truncated data, images smaller than one 14-pixel
patch per side, and images larger than MAX_PIXELS (checked from the PNG header before decoding).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from hypood_ros.errors import FrameError

MIN_SIDE = 14
MAX_PIXELS = 50_000_000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_size(height: int, width: int) -> None:
    if height < MIN_SIDE or width < MIN_SIDE:
        raise FrameError(f"image is {width}x{height}; both sides must be at least {MIN_SIDE} pixels")
    if height * width > MAX_PIXELS:
        raise FrameError(f"image is {width}x{height}, more than the {MAX_PIXELS} pixel limit")


def to_rgb8(image: np.ndarray, channel_order: str = "bgr") -> np.ndarray:
    """Decoded array (HxW or HxWxC, uint8/uint16) -> HxWx3 uint8 RGB."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise FrameError(f"unsupported pixel type {image.dtype} (8- or 16-bit integer images only)")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise FrameError(f"unsupported image layout {image.shape}")
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    rgb = image[:, :, :3]
    return np.ascontiguousarray(rgb[:, :, ::-1] if channel_order == "bgr" else rgb)


def _silence_decoder_warnings(cv2) -> None:
    """OpenCV's decoders log their own warnings; our one-line FrameError already says it."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)


def decode_image(data: bytes) -> np.ndarray:
    """Encoded bytes (PNG, JPEG, ...) -> HxWx3 uint8 RGB."""
    import cv2

    if len(data) == 0:
        raise FrameError("no image data")
    if data[:8] == _PNG_SIGNATURE and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        _check_size(height, width)
    _silence_decoder_warnings(cv2)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None:
        raise FrameError("not a decodable image (corrupt, truncated or unsupported format)")
    _check_size(*image.shape[:2])
    return to_rgb8(image, "bgr")


def read_image(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FrameError(f"cannot read file: {exc.strerror or exc}") from None
    return decode_image(data)


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """RGB (HxWx3) or single-channel uint8 -> file; the format follows the suffix."""
    import cv2

    out = image[:, :, ::-1] if image.ndim == 3 else image
    if not cv2.imwrite(str(path), np.ascontiguousarray(out)):
        raise OSError(f"could not write {path}")
