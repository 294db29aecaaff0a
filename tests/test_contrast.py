"""The mask's local contrast: the score against its surroundings inside the region (hypood_ros.contrast)."""
import warnings

import cv2
import numpy as np
import pytest

from hypood_ros.contrast import contrast_score, local_mean
from hypood_ros.pipeline import PipelineConfig, mask_score, obstacle_mask


def exact_local_mean(score, region, sigma):
    """The definition at full resolution: a Gaussian-weighted mean over the region's finite pixels."""
    weight = (region & np.isfinite(score)).astype(np.float64)
    values = np.where(weight > 0, score, 0) * weight
    blur = dict(ksize=(0, 0), sigmaX=sigma * score.shape[0], borderType=cv2.BORDER_CONSTANT)
    num, den = cv2.GaussianBlur(values, **blur), cv2.GaussianBlur(weight, **blur)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 1e-6)


def test_off_is_the_score_itself():
    score = np.random.default_rng(0).normal(size=(30, 40)).astype(np.float32)
    assert contrast_score(score, None, 0.0) is score


def test_a_flat_region_has_no_contrast_and_a_patch_on_it_stands_out():
    score = np.full((240, 480), 2.0, np.float32)
    score[150:160, 200:210] = 3.0  # an obstacle scoring 1 above the road around it
    region = np.zeros(score.shape, bool)
    region[100:, :] = True
    value = contrast_score(score, region, 0.15)
    patch = np.zeros(score.shape, bool)
    patch[150:160, 200:210] = True
    assert value[patch].min() > 0.9  # the patch is 100 of about 67 000 region pixels
    assert np.abs(value[region & ~patch]).max() < 0.1
    # a threshold of 0.5 on the contrast flags the patch and nothing else of the region
    assert np.array_equal((value > 0.5) & region, patch)


def test_pixels_outside_the_region_carry_no_weight():
    score = np.zeros((120, 240), np.float32)
    score[:, 120:] = 100.0  # high outside the region (buildings, the sky)
    region = np.zeros(score.shape, bool)
    region[:, :120] = True
    assert np.abs(local_mean(score, region, 0.2)[region]).max() < 1e-4
    assert local_mean(score, None, 0.2)[:, 110:120].min() > 10  # without the region it would spill in


def test_the_grid_mean_follows_the_full_resolution_definition():
    rng = np.random.default_rng(3)
    score = cv2.GaussianBlur(rng.normal(size=(360, 640)), (0, 0), 6).astype(np.float32) * 10
    score += rng.normal(scale=0.3, size=score.shape).astype(np.float32)
    region = np.zeros(score.shape, bool)
    region[150:, 60:600] = True
    for sigma in (0.005, 0.05, 0.15):  # 0.005: 1.8 pixels, no grid (every pixel its own cell)
        fast = local_mean(score, region, sigma)
        exact = exact_local_mean(score.astype(np.float64), region, sigma)
        spread = score[region].std()
        assert np.abs(fast - exact)[region].max() < 0.05 * spread  # 0.02-0.03 measured; 0.06-0.22 at 1 cell/sigma


def test_non_finite_scores_and_an_empty_region_are_harmless():
    score = np.ones((60, 120), np.float32)
    score[30, 60] = np.nan
    score[10, 10] = np.inf
    region = np.ones(score.shape, bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean = local_mean(score, region, 0.1)
        assert np.isfinite(mean).all() and np.allclose(mean, 1.0, atol=1e-5)
        empty = local_mean(score, np.zeros(score.shape, bool), 0.1)
        assert np.array_equal(empty, np.zeros(score.shape, np.float32))


def test_the_mask_thresholds_the_contrast_when_it_is_on():
    """A road whose score rises toward the horizon: a raw threshold flags the far road, the contrast the patch."""
    rows = np.linspace(1.0, 0.0, 200, dtype=np.float32)[:, None]
    score = np.repeat(rows, 400, axis=1) * 2.0
    score[150:165, 180:200] += 1.0  # near obstacle: scores below the far road in absolute terms
    region = np.ones(score.shape, bool)
    raw = obstacle_mask(score, region, PipelineConfig(threshold=1.5, roi="none")) > 0
    assert raw[:30].all() and not raw[150:165, 180:200].any()
    config = PipelineConfig(threshold=0.5, roi="none", local_contrast=0.1)
    contrast = obstacle_mask(score, region, config) > 0
    assert contrast[152:163, 182:198].all() and contrast.sum() < 2 * 15 * 20
    assert np.array_equal(mask_score(score, region, config), contrast_score(score, region, 0.1))


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_out_of_range_values_are_refused(value):
    from hypood_ros.errors import ConfigError

    with pytest.raises(ConfigError, match="local_contrast"):
        PipelineConfig(local_contrast=value)
