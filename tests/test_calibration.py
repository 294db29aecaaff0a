"""Calibration scores at the pipeline's score_resolution and records it beside the threshold."""
import numpy as np
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
        pipeline = FramePipeline(backend, PipelineConfig(score="uem_llr", score_resolution=resolution))
        result = calibrate(pipeline, lambda: iter(frames()), 0.05)
        # Independently: the pipeline's own scores at this resolution, flagged at the threshold.
        check = FramePipeline(backend, PipelineConfig(score="uem_llr", score_resolution=resolution))
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
