"""Calibration scores at the pipeline's score_resolution and records it beside the threshold."""
import numpy as np
import pytest
import yaml

from hypood_ros.calibration import calibrate, write_params
from hypood_ros.pipeline import FramePipeline, PipelineConfig
from hypood_ros.runtimes import load_backend


def frames():
    rng = np.random.default_rng(11)
    return [rng.integers(0, 256, (61, 97, 3), dtype=np.uint8) for _ in range(3)]


def test_calibration_follows_the_score_resolution(tmp_path, tiny_checkpoint):
    backend = load_backend(tiny_checkpoint, input_hw=(42, 56))
    thresholds = {}
    for resolution in ("image", "network"):
        pipeline = FramePipeline(backend, PipelineConfig(score="uem_llr", score_resolution=resolution, roi="none"))
        result = calibrate(pipeline, lambda: iter(frames()), 0.05)
        # Independently: the pipeline's own scores at this resolution, flagged at the threshold.
        check = FramePipeline(backend, PipelineConfig(score="uem_llr", score_resolution=resolution, roi="none"))
        scores = np.concatenate([check.process(f).score.ravel() for f in frames()])
        flagged = int((scores > result.threshold).sum())
        assert flagged <= 0.05 * scores.size and flagged >= int(0.05 * scores.size) - 1
        path = write_params(tmp_path / f"{resolution}.yaml", result, pipeline.config, "test frames", "tiny.pt",
                            backend.input_shape[2:])
        values = yaml.safe_load(path.read_text())["/**"]["ros__parameters"]
        assert values["score_resolution"] == resolution and values["threshold"] == result.threshold
        assert (values["input_height"], values["input_width"]) == (42, 56)
        thresholds[resolution] = result.threshold
    assert thresholds["image"] != thresholds["network"]


def street_frames():
    """Generated street scenes (road at the bottom), so the road region is not empty."""
    from hypood_ros.synthetic import writers

    return [writers.scene(seed, (60, 120)).rgb for seed in (3, 4, 5)]


def test_calibration_inside_the_region_flags_the_target_of_the_region(tmp_path):
    """The fraction is of the region's pixels; pixels outside it play no part in the threshold."""
    from pathlib import Path

    model = Path(__file__).resolve().parents[1] / "models" / "demo" / "model.pt"
    backend = load_backend(model, input_hw=(56, 112))
    config = PipelineConfig(score="normalized_max_logit", roi="road", roi_margin=1)
    result = calibrate(FramePipeline(backend, config), lambda: iter(street_frames()), 0.05)
    check = FramePipeline(backend, config)
    inside, everywhere = [], []
    for frame in street_frames():
        out = check.process(frame)
        inside.append(out.score[out.region])
        everywhere.append(out.score.ravel())
    inside, everywhere = np.concatenate(inside), np.concatenate(everywhere)
    assert 0 < inside.size < everywhere.size and result.pixels == inside.size
    assert result.total_pixels == everywhere.size and result.roi == "road"
    flagged = int((inside > result.threshold).sum())
    assert int(0.05 * inside.size) - 1 <= flagged <= 0.05 * inside.size
    whole = calibrate(FramePipeline(backend, config.replace(roi="none")), lambda: iter(street_frames()), 0.05)
    assert whole.threshold != result.threshold and whole.pixels == everywhere.size
    # the params file carries the region the threshold holds for
    path = write_params(tmp_path / "p.yaml", result, config, "test frames", "demo", (56, 112))
    values = yaml.safe_load(path.read_text())["/**"]["ros__parameters"]
    assert (values["roi"], values["roi_margin"], values["roi_drop_known"]) == ("road", 1, False)
    assert "opening" not in values
    assert "pixels inside the region of interest (road)" in path.read_text()


def test_calibration_refuses_an_empty_region_and_the_geometry_modes(tiny_checkpoint):
    import pytest

    from hypood_ros.errors import ConfigError, HypoodError

    backend = load_backend(tiny_checkpoint, input_hw=(42, 56))
    black = [np.zeros((40, 60, 3), np.uint8)] * 2
    pipeline = FramePipeline(backend, PipelineConfig(roi="road", roi_margin=100))
    with pytest.raises(HypoodError, match=r"region of interest \(road\) was empty in every frame"):
        calibrate(pipeline, lambda: iter(black), 0.05)
    for mode in ("corridor", "road_corridor"):
        with pytest.raises(ConfigError, match="no camera geometry"):
            calibrate(FramePipeline(backend, PipelineConfig(roi=mode)), lambda: iter(black), 0.05)


def test_calibration_with_local_contrast_ranks_what_the_mask_thresholds(tmp_path):
    """With local_contrast the threshold is of the score against its surroundings, and the file says so."""
    from pathlib import Path

    from hypood_ros.pipeline import mask_score

    model = Path(__file__).resolve().parents[1] / "models" / "demo" / "model.pt"
    backend = load_backend(model, input_hw=(56, 112))
    config = PipelineConfig(score="normalized_max_logit", roi="road", roi_margin=1, local_contrast=0.15)
    result = calibrate(FramePipeline(backend, config), lambda: iter(street_frames()), 0.05)
    check = FramePipeline(backend, config)
    values = []
    for frame in street_frames():
        out = check.process(frame)
        values.append(mask_score(out.score, out.region, config)[out.region])
    values = np.concatenate(values)
    flagged = int((values > result.threshold).sum())
    assert int(0.05 * values.size) - 1 <= flagged <= 0.05 * values.size
    plain = calibrate(FramePipeline(backend, config.replace(local_contrast=0.0)), lambda: iter(street_frames()), 0.05)
    assert plain.threshold != result.threshold
    path = write_params(tmp_path / "p.yaml", result, config, "test frames", "demo", (56, 112))
    assert yaml.safe_load(path.read_text())["/**"]["ros__parameters"]["local_contrast"] == 0.15
    # as the node's score_thresholds file: it holds for that local contrast only
    from hypood_ros.calibration import read_score_thresholds
    from hypood_ros.errors import ConfigError

    expected = {"normalized_max_logit": result.threshold}
    assert read_score_thresholds(path, 0.15) == expected == read_score_thresholds(path)
    with pytest.raises(ConfigError, match="holds for local_contrast 0.15, not 0.0"):
        read_score_thresholds(path, 0.0)
