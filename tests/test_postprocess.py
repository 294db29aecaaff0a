"""Preprocess, postprocess and pictures, each against an independent computation."""
import numpy as np
import pytest
import torch

from hypood_ros.errors import FrameError
from hypood_ros.postprocess import clean_mask, upsample
from hypood_ros.preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess
from hypood_ros.visualize import CITYSCAPES_PALETTE, color_map, heat_map, overlay


def test_preprocess_normalizes_like_imagenet():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (28, 42, 3), dtype=np.uint8)
    x = preprocess([frame], (28, 42), "cpu")
    want = (frame.astype(np.float64) / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), want, atol=1e-5)
    assert x.dtype == torch.float32 and x.shape == (1, 3, 28, 42)


def test_preprocess_resizes_and_batches():
    frames = [np.full((100, 200, 3), v, np.uint8) for v in (0, 255)]
    x = preprocess(frames, (56, 112), "cpu")
    assert x.shape == (2, 3, 56, 112)
    # A constant image stays constant through resizing.
    torch.testing.assert_close(x[1, 0], torch.full((56, 112), (1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]))
    with pytest.raises(FrameError, match="same size"):
        preprocess([frames[0], frames[0][:50]], (56, 112), "cpu")
    with pytest.raises(FrameError, match="HxWx3 uint8"):
        preprocess([np.zeros((10, 10), np.uint8)], (14, 14), "cpu")


def test_upsample_sizes_and_nearest_labels():
    score = torch.arange(6, dtype=torch.float32).view(2, 3)
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]], dtype=torch.uint8)
    s, lab = upsample(score, ids, (4, 6))
    assert s.shape == (4, 6) and s.dtype == np.float32 and lab.dtype == np.uint8
    assert set(np.unique(lab)) == {1, 2, 3, 4, 5, 6}
    np.testing.assert_array_equal(lab[:2, :2], 1)
    np.testing.assert_array_equal(lab[2:, 4:], 6)


def blobs():
    mask = np.zeros((60, 80), bool)
    mask[5:25, 5:25] = True  # 400 px, far from the road
    mask[40:44, 40:44] = True  # 16 px, on the road
    mask[45:55, 60:70] = True  # 100 px, on the road
    mask[2, 70] = True  # 1 px speck
    labels = np.full((60, 80), 10, np.uint8)  # sky
    labels[38:, 30:] = 0  # road
    labels[45:55, 60:70] = 13  # predicted as a car, surrounded by road
    return mask, labels


def test_min_area_drops_exactly_the_small_components():
    mask, labels = blobs()
    out = clean_mask(mask, min_area=50)
    assert out.dtype == np.uint8 and set(np.unique(out)) == {0, 255}
    assert (out > 0).sum() == 400 + 100
    assert out[2, 70] == 0 and out[41, 41] == 0


def test_opening_removes_specks_and_keeps_blobs():
    mask, labels = blobs()
    out = clean_mask(mask, opening=3)
    assert out[2, 70] == 0 and out[15, 15] == 255 and out[50, 65] == 255


def test_region_limits_the_mask_before_opening_and_min_area():
    mask, labels = blobs()
    region = np.zeros(mask.shape, bool)
    region[30:, :] = True  # the lower part only
    out = clean_mask(mask, region)
    assert out[15, 15] == 0  # outside the region
    assert out[41, 41] == 255 and out[50, 65] == 255
    assert (out > 0).sum() == (mask & region).sum()
    # min_area counts only the pixels inside the region: a blob cut by the region's edge can fall below it
    cut = np.zeros(mask.shape, bool)
    cut[:, :62] = True
    assert (clean_mask(mask, cut, min_area=50)[50, 60:62] == 0).all()
    assert (clean_mask(mask) > 0).sum() == mask.sum()


def test_pictures():
    labels = np.array([[0, 13], [255, 18]], np.uint8)
    color = color_map(labels)
    assert color.shape == (2, 2, 3)
    assert tuple(color[0, 0]) == tuple(CITYSCAPES_PALETTE[0]) and tuple(color[1, 0]) == (0, 0, 0)
    img = np.full((2, 2, 3), 100, np.uint8)
    ov = overlay(img, np.array([[255, 0], [0, 0]], np.uint8), alpha=0.5)
    assert tuple(ov[0, 0]) == (177, 50, 50) and tuple(ov[1, 1]) == (100, 100, 100)
    heat = heat_map(np.array([[0.0, 1.0], [2.0, 3.0]], np.float32))
    assert heat.shape == (2, 2, 3) and heat.dtype == np.uint8
    assert heat[0, 0, 2] > heat[0, 0, 0] and heat[1, 1, 0] > heat[1, 1, 2]  # blue low, red high
