"""sensor_msgs/Image fields -> HxWx3 uint8 RGB, vectorized, without ROS imports.

The node passes the message's fields; this module never sees a ROS type, so it is tested and
benchmarked like any other NumPy code. Rows padded by `step` and big-endian 16-bit data are honoured.
rgb8 comes back as a view of the message buffer (no copy); every other encoding is one vectorized pass.
"""
from __future__ import annotations

import sys
from typing import Dict, Tuple

import numpy as np

from hypood_ros.errors import FrameError
from hypood_ros.images import check_pixel_limit

# encoding -> (channels, bytes per channel)
ENCODINGS: Dict[str, Tuple[int, int]] = {
    "rgb8": (3, 1), "bgr8": (3, 1), "rgba8": (4, 1), "bgra8": (4, 1), "8UC3": (3, 1), "8UC4": (4, 1),
    "mono8": (1, 1), "8UC1": (1, 1), "mono16": (1, 2), "16UC1": (1, 2),
    "bayer_rggb8": (1, 1), "bayer_bggr8": (1, 1), "bayer_gbrg8": (1, 1), "bayer_grbg8": (1, 1),
    "yuv422": (2, 1), "uyvy": (2, 1), "UYVY": (2, 1), "yuv422_yuy2": (2, 1), "yuyv": (2, 1), "YUYV": (2, 1),
}


def check_image_fields(height: int, width: int, encoding: str, step: int, data_size: int) -> Tuple[int, int]:
    """Cheap validation of the header fields (no pixel work): returns (channels, bytes per channel)."""
    if encoding not in ENCODINGS:
        raise FrameError(f"unsupported encoding {encoding!r} (supported: {', '.join(sorted(ENCODINGS))})")
    if height <= 0 or width <= 0:
        raise FrameError(f"empty image {width}x{height}")
    check_pixel_limit(height, width)  # refused before any allocation
    channels, size = ENCODINGS[encoding]
    row = width * channels * size
    if step < row:
        raise FrameError(f"step {step} is smaller than width*channels*bytes = {row} for {encoding}")
    if encoding in ("yuv422", "uyvy", "UYVY", "yuv422_yuy2", "yuyv", "YUYV") and width % 2:
        raise FrameError(f"{encoding} needs an even width, got {width}")
    if data_size < step * height:
        raise FrameError(f"data has {data_size} bytes, step*height = {step * height} expected")
    return channels, size


_BAYER = {"bayer_rggb8": "BayerBG", "bayer_bggr8": "BayerRG", "bayer_gbrg8": "BayerGR", "bayer_grbg8": "BayerGB"}


def image_to_rgb(height: int, width: int, encoding: str, step: int, data, is_bigendian: int = 0) -> np.ndarray:
    """The message's pixels as HxWx3 uint8 RGB (possibly a strided view of `data`)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    channels, size = check_image_fields(height, width, encoding, step, buf.size)
    rows = buf[: step * height].reshape(height, step)[:, : width * channels * size]
    if size == 2:
        pixels = rows.view(">u2" if is_bigendian else "<u2").reshape(height, width)
        # Scale 16-bit to 8-bit by the high byte: the network was trained on 8-bit images.
        gray = (pixels >> 8).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    pixels = rows.reshape(height, width, channels)
    if encoding in ("rgb8", "8UC3"):
        return pixels
    import cv2

    # Channel reorders through OpenCV: one pass that also leaves a contiguous array (a NumPy view with
    # flipped channels would cost a much slower strided copy before the upload).
    if encoding == "bgr8":
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if encoding in ("rgba8", "8UC4"):
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB)
    if encoding == "bgra8":
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)

    if encoding in ("mono8", "8UC1"):
        return cv2.cvtColor(np.ascontiguousarray(pixels[:, :, 0]), cv2.COLOR_GRAY2RGB)
    if encoding in _BAYER:
        return cv2.cvtColor(np.ascontiguousarray(pixels[:, :, 0]), getattr(cv2, f"COLOR_{_BAYER[encoding]}2RGB"))
    code = cv2.COLOR_YUV2RGB_UYVY if encoding in ("yuv422", "uyvy", "UYVY") else cv2.COLOR_YUV2RGB_YUYV
    return cv2.cvtColor(np.ascontiguousarray(pixels), code)


def rgb_fields(image: np.ndarray) -> Tuple[str, int, bytes]:
    """numpy output -> (encoding, step, data) for an outgoing sensor_msgs/Image."""
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        encoding = "rgb8"
    elif image.dtype == np.uint8 and image.ndim == 2:
        encoding = "mono8"
    elif image.dtype == np.float32 and image.ndim == 2:
        encoding = "32FC1"
    else:
        raise ValueError(f"no image encoding for {image.dtype} {image.shape}")
    image = np.ascontiguousarray(image)
    if image.dtype.byteorder == ">" or (image.dtype.byteorder == "=" and sys.byteorder == "big"):
        image = image.astype(image.dtype.newbyteorder("<"))
    return encoding, image.strides[0], image.tobytes()
