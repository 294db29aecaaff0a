"""The region of interest of the obstacle mask (hypood_ros.roi) on hand-drawn label maps."""
from __future__ import annotations

import numpy as np
import pytest

from hypood_ros.errors import ConfigError
from hypood_ros.roi import ROI_MODES, check_roi, region_of_interest, road_region

ROAD, SIDEWALK, BUILDING, SKY, CAR = 0, 1, 2, 10, 13


def street(height: int = 120, width: int = 160) -> np.ndarray:
    """Sky, buildings, and a road trapezoid from the bottom edge up to row 50, sidewalks beside it."""
    labels = np.full((height, width), SKY, np.uint8)
    labels[40:, :] = BUILDING
    for row in range(50, height):
        half = 10 + (row - 50)  # widening towards the bottom
        left, right = max(0, width // 2 - half), min(width, width // 2 + half)
        labels[row, max(0, left - 8):left] = SIDEWALK
        labels[row, right:min(width, right + 8)] = SIDEWALK
        labels[row, left:right] = ROAD
    return labels


@pytest.mark.parametrize("step", [1, 2])
def test_an_obstacle_on_the_road_is_inside_although_not_labelled_road(step):
    labels = street()
    labels[70:80, 75:85] = 255  # an unknown thing in the middle of the road
    labels[90:100, 50:56] = BUILDING  # something touching the road's left edge (a notch in the road)
    region = road_region(labels, step=step)
    assert region[70:80, 75:85].all()
    assert region[92:98, 52:56].all()  # the notch: road above and below it in each column
    assert not region[:45].any()  # sky and buildings above the road
    assert not region[100, :18].any()  # sidewalk and beyond at the left (the coarse grid moves the edge by a pixel)


def test_road_seen_elsewhere_does_not_make_the_region():
    labels = street()
    labels[5:15, 10:40] = ROAD  # a patch of road far up the picture (e.g. a ramp between buildings)
    region = road_region(labels, step=1)
    assert not region[5:15, 10:40].any()
    assert region[110, 80]


def test_margin_pulls_the_border_in_and_drop_known_takes_vehicles_out():
    labels = street()
    labels[60:66, 72:80] = CAR
    full = road_region(labels, step=1)
    thin = road_region(labels, margin=3, step=1)
    assert thin.sum() < full.sum() and not (thin & ~full).any()
    row = 100
    left = np.flatnonzero(full[row])[0]
    assert not thin[row, left:left + 3].any() and thin[row, left + 3 + 1]
    assert full[60:66, 72:80].all()  # a car on the road is inside by default
    assert not road_region(labels, drop_known=True, step=1)[60:66, 72:80].any()


def test_a_picture_without_road_has_an_empty_region():
    labels = np.full((48, 64), BUILDING, np.uint8)
    assert not road_region(labels).any()
    assert road_region(labels).shape == (48, 64)


def test_coarse_grid_agrees_with_the_full_grid_but_near_the_border():
    labels = street(241, 321)  # odd sizes: the coarse grid's last row and column are partial
    fine, coarse = road_region(labels, step=1), road_region(labels, step=2)
    assert coarse.shape == fine.shape
    differ = fine != coarse
    assert differ.mean() < 0.01
    import cv2

    border = cv2.morphologyEx(fine.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > 0
    assert not (differ & ~border).any()


def test_modes():
    labels = street()
    corridor = np.zeros(labels.shape, bool)
    corridor[60:, 70:90] = True
    assert region_of_interest("none", labels) is None
    road = region_of_interest("road", labels)
    assert (region_of_interest("corridor", labels, corridor) == corridor).all()
    both = region_of_interest("road_corridor", labels, corridor)
    assert (both == (road & corridor)).all()
    # without a corridor (no camera_info yet) the geometry modes use the road region
    assert (region_of_interest("corridor", labels) == road).all()
    assert (region_of_interest("road_corridor", labels) == road).all()
    assert set(ROI_MODES) == {"none", "road", "corridor", "road_corridor"}
    with pytest.raises(ConfigError, match="roi must be one of none, road, corridor, road_corridor, got 'lane'"):
        check_roi("lane")


def test_pipeline_masks_only_inside_the_region_and_reports_a_missing_corridor(tiny_checkpoint):
    from hypood_ros.pipeline import FramePipeline, PipelineConfig
    from hypood_ros.runtimes import load_backend

    backend = load_backend(str(tiny_checkpoint), input_hw=(28, 56))
    frame = np.random.default_rng(0).integers(0, 255, (40, 80, 3), dtype=np.uint8)
    pipeline = FramePipeline(backend, PipelineConfig(roi="none", threshold=-1.0e4))  # the lowest allowed
    assert (pipeline.process(frame).mask == 255).all()
    corridor = np.zeros((40, 80), bool)
    corridor[20:, 30:50] = True
    pipeline.update(roi="corridor")
    result = pipeline.process(frame, corridor)
    assert ((result.mask > 0) == corridor).all() and not result.roi_fallback
    fallback = pipeline.process(frame)
    assert fallback.roi_fallback
    assert ((fallback.mask > 0) == fallback.region).all()
    with pytest.raises(ConfigError, match="corridor is 10x10, the frame 80x40"):
        pipeline.process(frame, np.ones((10, 10), bool))
    with pytest.raises(ConfigError):
        pipeline.update(roi="lane")


def test_an_empty_region_gives_an_empty_mask(tiny_checkpoint):
    """A frame without road (a wall, a black frame) has an empty road region: no mask, nothing divided by it."""
    from hypood_ros.pipeline import FramePipeline, PipelineConfig
    from hypood_ros.runtimes import load_backend

    backend = load_backend(str(tiny_checkpoint), input_hw=(28, 56))
    pipeline = FramePipeline(backend, PipelineConfig(roi="road", roi_margin=100, threshold=-1.0e4))
    result = pipeline.process(np.zeros((40, 80, 3), np.uint8))
    assert not result.region.any() and not result.mask.any() and result.overlay is not None


def test_a_params_file_with_the_replaced_road_gating_names_what_replaced_it():
    from hypood_ros.node.params_files import unknown_names

    assert unknown_names(["road_gating", "road_radius", "roi", "thresold"]) == [
        "road_gating (replaced by roi (road_gating: true is roi: road))",
        "road_radius (replaced by roi_margin (roi: road))",
        "thresold (did you mean threshold?)"]


def test_the_vehicles_own_pixels_are_never_in_the_region(tmp_path, tiny_checkpoint):
    from hypood_ros.images import write_image
    from hypood_ros.pipeline import FramePipeline, PipelineConfig
    from hypood_ros.roi import load_ego_mask
    from hypood_ros.runtimes import load_backend

    labels = street()
    ego = np.zeros((60, 80), bool)  # half the labels' size: brought to the frame's size
    ego[54:, :] = True  # the bonnet at the bottom
    road = region_of_interest("road", labels)
    with_ego = region_of_interest("road", labels, ego=ego)
    big = np.repeat(np.repeat(ego, 2, 0), 2, 1)
    assert road[110:].any() and not with_ego[108:].any() and (with_ego == (road & ~big)).all()
    assert (region_of_interest("none", labels, ego=ego) == ~big).all()
    write_image(tmp_path / "ego.png", ego.astype(np.uint8) * np.uint8(255))
    assert (load_ego_mask(tmp_path / "ego.png") == ego).all()
    write_image(tmp_path / "all.png", np.full((20, 20), 255, np.uint8))
    for path, message in ((tmp_path / "all.png", "every pixel is marked as the vehicle"),
                          (tmp_path / "none.png", "ego_mask .*none.png: cannot read file")):
        with pytest.raises(ConfigError, match=message):
            load_ego_mask(path)
    backend = load_backend(str(tiny_checkpoint), input_hw=(28, 56))
    pipeline = FramePipeline(backend, PipelineConfig(roi="none", threshold=-1e4), ego_mask=ego)
    mask = pipeline.process(np.zeros((40, 80, 3), np.uint8)).mask > 0
    assert not mask[36:].any() and mask[:35].all()
