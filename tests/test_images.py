"""Image files -> HxWx3 uint8 RGB: each accepted kind against its expected pixels, each refused kind by its message."""
import struct
import zlib

import cv2
import numpy as np
import pytest

from hypood_ros.errors import FrameError
from hypood_ros.images import MAX_PIXELS, MIN_SIDE, decode_image, read_image, write_image


def encode(ext, image):
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def rgb_frame(h=20, w=30):
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_color_png_comes_back_as_rgb():
    rgb = rgb_frame()
    out = decode_image(encode(".png", rgb[:, :, ::-1]))  # OpenCV writes BGR
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


def test_grayscale_is_replicated_to_three_channels():
    gray = rgb_frame()[:, :, 0]
    out = decode_image(encode(".png", gray))
    assert out.shape == (20, 30, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_sixteen_bit_is_scaled_to_the_high_byte():
    deep = np.random.default_rng(1).integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    out = decode_image(encode(".png", deep))
    np.testing.assert_array_equal(out, (deep[:, :, ::-1] // 256).astype(np.uint8))


def test_alpha_is_dropped():
    rgba = np.dstack([rgb_frame(), np.full((20, 30), 7, np.uint8)])
    out = decode_image(encode(".png", rgba[:, :, [2, 1, 0, 3]]))
    np.testing.assert_array_equal(out, rgba[:, :, :3])


@pytest.mark.parametrize("h,w", [(1, 1), (MIN_SIDE - 1, 50), (50, MIN_SIDE - 1)])
def test_too_small_is_refused(h, w):
    with pytest.raises(FrameError, match=f"at least {MIN_SIDE} pixels"):
        decode_image(encode(".png", rgb_frame(h, w)))


def test_minimum_size_is_accepted():
    assert decode_image(encode(".png", rgb_frame(MIN_SIDE, MIN_SIDE))).shape == (MIN_SIDE, MIN_SIDE, 3)


def png_header_only(width, height):
    """A PNG whose IHDR claims a size but carries no pixel data: the size check must come before decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_very_large_png_is_refused_from_its_header():
    side = int(MAX_PIXELS ** 0.5) + 1
    with pytest.raises(FrameError, match="pixel limit"):
        decode_image(png_header_only(side, side))


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n"])
def test_undecodable_bytes_are_refused(data):
    with pytest.raises(FrameError):
        decode_image(data)


def test_truncated_png_is_refused():
    data = encode(".png", rgb_frame(60, 80))
    with pytest.raises(FrameError, match="not a decodable image"):
        decode_image(data[: len(data) // 2])


def test_read_and_write_files(tmp_path):
    rgb = rgb_frame()
    write_image(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)
    with pytest.raises(FrameError, match="cannot read file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(FrameError, match="cannot read file"):
        read_image(tmp_path)  # a directory
