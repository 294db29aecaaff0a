"""Lossless PNG payloads for sensor_msgs/CompressedImage outputs, as image_transport's `compressed` plugin
writes and reads them (ROS-free).

The format string is what compressed_image_transport's publisher writes for a PNG of a mono image
(`"<encoding>; png compressed "`); its subscriber takes the encoding from the part before `;` and decodes
the bytes with OpenCV, so a `<topic>/compressed` subscriber (RViz, `republish compressed raw`) gets the
mono8 image back pixel for pixel.
"""
from __future__ import annotations

import numpy as np

#: zlib level 0 (store) to 9 (smallest); 3 is compressed_image_transport's default `png_level`.
DEFAULT_LEVEL = 3


def png_format(encoding: str = "mono8") -> str:
    """The CompressedImage `format` of a PNG of a one-channel image."""
    return f"{encoding}; png compressed "


def encode_png(image: np.ndarray, level: int = DEFAULT_LEVEL) -> bytes:
    """A HxW uint8 image as PNG bytes."""
    import cv2

    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"a PNG output takes a HxW uint8 image, got {image.dtype} {image.shape}")
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, int(level)])
    if not ok:
        raise ValueError("OpenCV could not encode the PNG")
    return data.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> the image as stored (HxW uint8 for the mono8 outputs)."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("not a PNG image")
    return image
