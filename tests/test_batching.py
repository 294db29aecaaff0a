"""Many frames in one call of the frame pipeline: forward passes as the backend's batch allows, any frame sizes."""
import numpy as np
import pytest

from hypood_ros.pipeline import FramePipeline, PipelineConfig
from hypood_ros.runtimes import load_backend
from hypood_ros.runtimes.export import export_onnx

HW = (56, 112)
SIZES = [(75, 130), (120, 160), (75, 130)]  # three cameras, two sizes


def frames():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES]


def counting(backend):
    """The backend, with the batch size of each of its runs recorded."""
    runs = []
    run = backend.run

    def counted(batch):
        runs.append(int(batch.shape[0]))
        return run(batch)

    backend.run = counted
    return backend, runs


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("onnx")
    return {b: export_onnx(tiny_model, folder / f"b{b}.onnx", *HW, batch=b).path for b in (1, 2)}


def single(pipeline, images):
    return [pipeline.process(f) for f in images]


@pytest.mark.parametrize("resolution", ["image", "network"])
def test_a_dynamic_batch_is_one_pass_for_frames_of_any_size(tiny_checkpoint, resolution):
    backend, runs = counting(load_backend(tiny_checkpoint, input_hw=HW))
    assert backend.batch_range == (1, None)
    pipeline = FramePipeline(backend, PipelineConfig(roi="none", score_resolution=resolution))
    images = frames()
    batched = pipeline.process_batch(images)
    assert runs == [3]
    for image, got, want in zip(images, batched, single(pipeline, images)):
        assert got.score.shape == image.shape[:2] == got.mask.shape
        np.testing.assert_allclose(got.score, want.score, rtol=1e-4, atol=1e-4)
        assert (got.labels != want.labels).mean() < 1e-3


@pytest.mark.parametrize("b, expected_runs", [(1, [1, 1, 1]), (2, [2, 2])])
def test_a_fixed_batch_graph_runs_in_its_own_batch_size(onnx_files, b, expected_runs):
    backend, runs = counting(load_backend(onnx_files[b]))
    assert backend.batch_range == (b, b)
    pipeline = FramePipeline(backend, PipelineConfig(roi="none"))
    images = frames()
    batched = pipeline.process_batch(images)
    assert runs == expected_runs  # B = 2: the third frame runs with a copy of itself as padding
    reference = FramePipeline(load_backend(onnx_files[1]), PipelineConfig(roi="none"))
    for image, got, want in zip(images, batched, single(reference, images)):
        assert got.score.shape == image.shape[:2]
        np.testing.assert_allclose(got.score, want.score, rtol=1e-4, atol=1e-4)


def test_warm_up_runs_the_batch_the_node_expects(tiny_checkpoint):
    backend, runs = counting(load_backend(tiny_checkpoint, input_hw=HW))
    FramePipeline(backend).warm_up(frames=3)
    assert runs[-1] == 3
