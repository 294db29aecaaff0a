"""Image message fields -> RGB for every camera encoding, with padding, endianness and bad headers."""
import numpy as np
import pytest

from hypood_ros.conversion import ENCODINGS, image_to_rgb, rgb_fields
from hypood_ros.errors import FrameError

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def padded(rows: np.ndarray, pad: int) -> tuple:
    """Rows of bytes with `pad` junk bytes after each: returns (step, data)."""
    h = rows.shape[0]
    flat = rows.reshape(h, -1)
    out = np.concatenate([flat, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    return out.shape[1], out.tobytes()


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("encoding,raw", [
    ("rgb8", RGB), ("bgr8", RGB[:, :, ::-1]), ("rgba8", np.dstack([RGB, np.full((6, 8), 7, np.uint8)])),
    ("bgra8", np.dstack([RGB[:, :, ::-1], np.full((6, 8), 7, np.uint8)])),
])
def test_color_encodings(encoding, raw, pad):
    step, data = padded(np.ascontiguousarray(raw), pad)
    out = image_to_rgb(6, 8, encoding, step, data)
    np.testing.assert_array_equal(out, RGB)


def test_rgb8_is_zero_copy():
    data = bytearray(RGB.tobytes())
    out = image_to_rgb(6, 8, "rgb8", 24, data)
    data[0] = (int(RGB[0, 0, 0]) + 1) % 256
    assert out[0, 0, 0] == data[0]  # a view of the message buffer


def test_mono8_and_mono16_both_endians():
    gray = RNG.integers(0, 256, (6, 8), dtype=np.uint8)
    step, data = padded(gray, 3)
    np.testing.assert_array_equal(image_to_rgb(6, 8, "mono8", step, data), np.dstack([gray] * 3))
    deep = RNG.integers(0, 65536, (6, 8)).astype(np.uint16)
    for big in (0, 1):
        raw = deep.astype(">u2" if big else "<u2").view(np.uint8).reshape(6, 16)
        step, data = padded(raw, 2)
        out = image_to_rgb(6, 8, "mono16", step, data, is_bigendian=big)
        np.testing.assert_array_equal(out[:, :, 0], (deep >> 8).astype(np.uint8))


@pytest.mark.parametrize("encoding,pattern", [("bayer_rggb8", "RGGB"), ("bayer_bggr8", "BGGR"),
                                              ("bayer_gbrg8", "GBRG"), ("bayer_grbg8", "GRBG")])
def test_bayer_patterns_demosaic_to_the_right_color(encoding, pattern):
    """A uniform reddish scene mosaicked with each pattern must come back reddish."""
    color = {"R": 200, "G": 60, "B": 20}
    mosaic = np.zeros((8, 8), np.uint8)
    for dy in (0, 1):
        for dx in (0, 1):
            mosaic[dy::2, dx::2] = color[pattern[2 * dy + dx]]
    out = image_to_rgb(8, 8, encoding, 8, mosaic.tobytes())
    center = out[3:5, 3:5].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(center, [200, 60, 20], atol=2)


def bt601_limited(rgb):
    """RGB -> Y, Cb, Cr as cameras send it (ITU-R BT.601, video range), written out independently."""
    r, g, b = (rgb[..., i].astype(np.float64) / 255 for i in range(3))
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return [np.clip(np.round(c), 0, 255).astype(np.uint8) for c in (y, cb, cr)]


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_yuv422_packings(encoding):
    rgb = np.repeat(RNG.integers(30, 226, (6, 4, 3), dtype=np.uint8), 2, axis=1)  # pairs share chroma
    y, u, v = bt601_limited(rgb)
    packed = np.zeros((6, 16), np.uint8)
    u2, v2 = u[:, ::2], v[:, ::2]
    if encoding == "yuv422":  # UYVY
        packed[:, 0::4], packed[:, 1::4], packed[:, 2::4], packed[:, 3::4] = u2, y[:, ::2], v2, y[:, 1::2]
    else:  # YUYV
        packed[:, 0::4], packed[:, 1::4], packed[:, 2::4], packed[:, 3::4] = y[:, ::2], u2, y[:, 1::2], v2
    out = image_to_rgb(6, 8, encoding, 16, packed.tobytes())
    assert np.abs(out.astype(int) - rgb.astype(int)).max() <= 3  # rounding only


@pytest.mark.parametrize("fields,message", [
    ((6, 8, "foo16", 24, 144), "unsupported encoding 'foo16'"),
    ((6, 8, "rgb8", 20, 144), "step 20 is smaller than width\\*channels\\*bytes = 24"),
    ((6, 8, "rgb8", 24, 100), "data has 100 bytes, step\\*height = 144 expected"),
    ((0, 0, "rgb8", 0, 0), "empty image 0x0"),
    ((10000, 10000, "rgb8", 30000, 16), "above the pixel limit of 50000000"),
    ((6, 7, "yuv422", 14, 84), "even width"),
])
def test_bad_headers_raise_frame_error(fields, message):
    h, w, enc, step, size = fields
    with pytest.raises(FrameError, match=message):
        image_to_rgb(h, w, enc, step, bytes(size))


def test_every_listed_encoding_converts():
    for encoding, (channels, size) in ENCODINGS.items():
        out = image_to_rgb(4, 6, encoding, 6 * channels * size, bytes(4 * 6 * channels * size))
        assert out.shape == (4, 6, 3) and out.dtype == np.uint8, encoding


def test_output_fields():
    assert rgb_fields(RGB)[:2] == ("rgb8", 24)
    assert rgb_fields(np.zeros((6, 8), np.uint8))[:2] == ("mono8", 8)
    enc, step, data = rgb_fields(np.ones((6, 8), np.float32))
    assert (enc, step, len(data)) == ("32FC1", 32, 192)
