"""Encoded image bytes or files -> HxWx3 uint8 RGB, with one clear FrameError for anything unusable.

Accepted and converted: 8-bit and 16-bit (scaled to 8 bits), grayscale (replicated to RGB) and
RGBA/BGRA (alpha dropped). Refused: undecodable or truncated data, images smaller than one 14-pixel
patch per side, and images larger than the pixel limit (checked from the PNG header before decoding).

The pixel limit is the one limit of the package: raw ROS frames (`conversion.py`) and every image file
reader check it here. It exists because the cost of a frame grows with its pixels while the network
sees a fixed size: a 14000x14000 picture would run for most of an hour. `set_max_pixels` raises it
(the `hypood --max-image-pixels` option).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from hypood_ros.errors import FrameError

MIN_SIDE = 14
#: Default pixel limit (50 megapixels: above 8K video, far above any vehicle camera).
MAX_PIXELS = 50_000_000
#: File suffixes read as images, in the order a reader tries them for a file named by its stem.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_limit = MAX_PIXELS


def max_pixels() -> int:
    """The pixel limit in force (MAX_PIXELS unless raised or lowered with `set_max_pixels`)."""
    return _limit


def set_max_pixels(limit: int) -> None:
    """Change the pixel limit for every reader in this process."""
    global _limit
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < MIN_SIDE * MIN_SIDE:
        raise ValueError(f"the pixel limit must be an integer >= {MIN_SIDE * MIN_SIDE}, got {limit!r}")
    _limit = limit


def check_pixel_limit(height: int, width: int) -> None:
    """FrameError for a frame above the pixel limit, before anything of its size is allocated."""
    if height * width > _limit:
        raise FrameError(f"image is {width}x{height} = {height * width} pixels, above the pixel limit of {_limit} "
                         "(hypood commands raise it with --max-image-pixels)")


def _check_size(height: int, width: int) -> None:
    if height < MIN_SIDE or width < MIN_SIDE:
        raise FrameError(f"image is {width}x{height}; both sides must be at least {MIN_SIDE} pixels")
    check_pixel_limit(height, width)


def is_image_file(path: str | os.PathLike) -> bool:
    """A visible file whose suffix is one of IMAGE_SUFFIXES."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


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
    """An image file -> HxWx3 uint8 RGB; FrameError (one line) for anything unusable."""
    path = Path(path)
    if path.is_dir():
        raise FrameError("cannot read file: it is a folder, not an image file")
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
