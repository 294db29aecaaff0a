"""Property tests: no header or byte pattern makes frame conversion fail other than with FrameError."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypood_ros.conversion import ENCODINGS, image_to_rgb
from hypood_ros.errors import FrameError
from hypood_ros.images import decode_image

encodings = st.sampled_from(sorted(ENCODINGS) + ["", "weird", "32FC1", "rgb16"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(height=st.integers(-2, 40), width=st.integers(-2, 40), encoding=encodings,
       step_delta=st.integers(-8, 16), size_delta=st.integers(-64, 64), big=st.integers(0, 1), seed=st.integers(0, 9))
def test_image_to_rgb_returns_rgb_or_frame_error(height, width, encoding, step_delta, size_delta, big, seed):
    channels, size = ENCODINGS.get(encoding, (3, 1))
    step = max(0, width * channels * size + step_delta)
    n = max(0, step * max(height, 0) + size_delta)
    data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    try:
        out = image_to_rgb(height, width, encoding, step, data, big)
    except FrameError:
        return
    assert out.shape == (height, width, 3) and out.dtype == np.uint8


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=0, max_size=600))
def test_decode_image_returns_rgb_or_frame_error(data):
    try:
        out = decode_image(data)
    except FrameError:
        return
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(0, 2000), flip=st.integers(0, 2000))
def test_damaged_png_and_jpeg(cut, flip):
    import cv2

    rgb = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    for ext in (".png", ".jpg"):
        buf = bytearray(cv2.imencode(ext, rgb)[1].tobytes())
        if flip < len(buf):
            buf[flip] ^= 0xFF
        try:
            out = decode_image(bytes(buf[: max(1, len(buf) - cut)]))
        except FrameError:
            continue
        assert out.shape[2] == 3


def test_png_claiming_a_huge_size_is_refused_before_decoding():
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    data = b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 32
    try:
        decode_image(data)
    except FrameError as exc:
        assert "pixel limit" in str(exc)
    else:
        raise AssertionError("a 10-gigapixel PNG header was accepted")
