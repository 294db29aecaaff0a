"""score_resolution: `image` is the UEM authors' order (interpolate, then score), `network` today's fast order.

The reference in this file is written independently of the package: F.interpolate the segmentation logits and
the UEM logits to the output size, then LLR = u_1 - u_0 - max_k (f+b)_k per output pixel.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hypood_ros.evaluation.evaluate import score_maps as eval_score_maps
from hypood_ros.kernels import FusedArgs, fused_scores
from hypood_ros.pipeline import FramePipeline, PipelineConfig
from hypood_ros.preprocess import preprocess
from hypood_ros.runtimes import load_backend
from hypood_ros.runtimes.base import HeadParams
from hypood_ros.scores import SCORES, ScoreInputs, compute_score, registry, score_map
from hypood_ros.scores.interpolation import axis_weights, interpolate_rows

INPUT = (56, 112)  # network input of the tiny backend: logits on a 16x32 grid, UEM logits on 4x8
SIZES = [(56, 112), (75, 130), (31, 47), (16, 32), (121, 243)]  # equal, larger, smaller, the grid, odd


def official_llr(logits: torch.Tensor, uem: torch.Tensor, size) -> torch.Tensor:
    """The authors' order: logits and UEM logits upsampled (bilinear, align_corners=False), then the LLR."""
    seg = F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=False)
    u = F.interpolate(uem.float(), size=tuple(size), mode="bilinear", align_corners=False)
    return u[:, 1] - u[:, 0] - seg.max(dim=1)[0]


@pytest.fixture(scope="module")
def backend(tiny_checkpoint):
    return load_backend(tiny_checkpoint, input_hw=INPUT)


def frame(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def network_outputs(backend, img):
    with torch.no_grad():
        return backend.run(preprocess([img], INPUT, "cpu"))


def random_inputs(b=1, k=19, d=16, h=12, w=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(b, d, h, w, generator=g)
    weight, bias = torch.randn(k, d, generator=g), torch.randn(k, generator=g)
    logits = torch.einsum("kd,bdhw->bkhw", weight, emb) + bias.view(1, -1, 1, 1)
    uem = torch.randn(b, 2, max(1, h // 4), max(1, w // 4), generator=g)
    return ScoreInputs(logits, emb, HeadParams(weight.norm(dim=1), bias), uem)


# --- the interpolation itself -------------------------------------------------------------------------------

@pytest.mark.parametrize("src,dst", [((37, 74), (480, 640)), ((148, 296), (1081, 1919)), ((148, 296), (37, 75)),
                                     ((7, 9), (13, 17)), ((5, 7), (5, 9)), ((16, 32), (1, 1))])
def test_bilinear_rows_agree_with_f_interpolate(src, dst):
    x = torch.randn(2, 3, *src, generator=torch.Generator().manual_seed(1))
    want = F.interpolate(x, size=dst, mode="bilinear", align_corners=False)
    whole = interpolate_rows(x, dst)
    torch.testing.assert_close(whole, want, rtol=0, atol=2e-6)  # float32 rounding of the blend only
    bands = torch.cat([interpolate_rows(x, dst, (r, min(dst[0], r + 7))) for r in range(0, dst[0], 7)], dim=2)
    assert torch.equal(bands, whole)


def test_axis_weights_are_those_of_f_interpolate():
    for n_in, n_out in [(37, 480), (148, 1081), (148, 37), (7, 13), (296, 1919)]:
        basis = torch.eye(n_in).view(n_in, 1, n_in, 1)
        dense = F.interpolate(basis, size=(n_out, 1), mode="bilinear", align_corners=False)[:, 0, :, 0]
        i0, i1, w0, w1 = axis_weights(n_in, n_out, 0, n_out)
        ours = torch.zeros(n_in, n_out)
        ours.index_put_((i0, torch.arange(n_out)), w0, accumulate=True)
        ours.index_put_((i1, torch.arange(n_out)), w1, accumulate=True)
        torch.testing.assert_close(ours, dense, rtol=0, atol=1e-6)
    assert axis_weights(5, 5, 0, 5) is None  # unchanged axes are copied


def test_score_map_bands_equal_one_band_exactly(monkeypatch):
    inputs = random_inputs(b=2, h=16, w=24)
    names = [n for n, s in SCORES.items() if not s.needs_sml]
    whole, whole_ids = registry.score_maps(names, inputs, (203, 317), "image")
    monkeypatch.setattr(registry, "BAND_PIXELS", 2 * 317 * 5)  # bands of 5 rows
    assert len(registry._bands(inputs, (203, 317))) == 41
    banded, banded_ids = registry.score_maps(names, inputs, (203, 317), "image")
    assert torch.equal(banded_ids, whole_ids)
    for name in ("uem_llr", "max_logit", "normalized_max_logit", "norm"):  # interpolation, max, +-*/: exact
        assert torch.equal(banded[name], whole[name]), name
        assert torch.equal(score_map(name, inputs, (203, 317), "image")[0], whole[name]), name
    for name in names:  # softmax / logsumexp / pow round the last bit by tensor layout in PyTorch's CPU kernels
        torch.testing.assert_close(banded[name], whole[name], rtol=1e-6, atol=1e-6, msg=name)


def test_image_is_interpolate_then_formula_for_every_score():
    inputs = random_inputs(h=10, w=14)
    size = (33, 47)
    seg = F.interpolate(inputs.logits, size=size, mode="bilinear", align_corners=False)
    norm = F.interpolate(inputs.embedding.norm(dim=1, keepdim=True), size=size, mode="bilinear", align_corners=False)
    u = F.interpolate(inputs.uem_logits, size=size, mode="bilinear", align_corners=False)
    up = ScoreInputs(seg, norm, inputs.head, u)
    for name in (n for n, s in SCORES.items() if not s.needs_sml):
        got, ids = score_map(name, inputs, size, "image", eta=1.3, delta=0.4, lam=0.7)
        want = compute_score(name, up, eta=1.3, delta=0.4, lam=0.7)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=name)
    assert torch.equal(ids, seg.argmax(1).to(torch.uint8))


# --- the two orders differ where the max switches class -----------------------------------------------------

def test_crafted_max_switch_tells_the_orders_apart():
    # Two cells, the max switching class between them: the interpolated logits at the midpoint are (5, 5).
    logits = torch.tensor([[10.0, 0.0], [0.0, 10.0]]).view(1, 2, 1, 2)
    inputs = ScoreInputs(logits, torch.ones(1, 4, 1, 2), HeadParams(torch.ones(2), torch.zeros(2)),
                         torch.zeros(1, 2, 1, 2))
    size = (1, 8)
    image, _ = score_map("uem_llr", inputs, size, "image")
    network, _ = score_map("uem_llr", inputs, size, "network")
    torch.testing.assert_close(image, official_llr(logits, inputs.uem_logits, size), rtol=0, atol=1e-6)
    assert torch.allclose(network, torch.full_like(network, -10.0))  # max 10 in both cells, interpolated
    assert (image - network).abs().max() >= 3.7  # near the midpoint: about -6 against -10


# --- uem_llr at image equals the authors' order in every consumer -------------------------------------------

@pytest.mark.parametrize("size", SIZES)
def test_pipeline_uem_llr_at_image_is_the_official_order(backend, size):
    img = frame(*size, seed=size[0])
    result = FramePipeline(backend, PipelineConfig(score="uem_llr")).process(img)
    out = network_outputs(backend, img)
    want = official_llr(out["seg_logits"], out["uem_logits"], size)[0]
    np.testing.assert_allclose(result.score, want.numpy(), rtol=1e-5, atol=1e-5)
    seg = F.interpolate(out["seg_logits"], size=size, mode="bilinear", align_corners=False)
    agree = (result.labels == seg.argmax(1)[0].numpy()).mean()
    assert agree > 0.999  # argmax of the interpolated logits (ties within float rounding aside)


@pytest.mark.parametrize("size", SIZES)
def test_evaluation_uem_llr_at_image_is_the_official_order(backend, size):
    img = frame(*size, seed=size[1])
    maps = eval_score_maps(backend, img, ["uem_llr", "energy"], size, {}, resolution="image")
    out = network_outputs(backend, img)
    want = official_llr(out["seg_logits"], out["uem_logits"], size)[0]
    np.testing.assert_allclose(maps["uem_llr"], want.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", SIZES)
def test_fused_cpu_path_at_image_is_the_registry(backend, size):
    img = frame(*size, seed=3)
    out = network_outputs(backend, img)
    fused = fused_scores(FusedArgs(out["embedding"], out["seg_logits"], backend.head, eta=1.5,
                                   uem_logits=out["uem_logits"], lam=1.0, out_size=size))
    inputs = ScoreInputs(out["seg_logits"], out["embedding"], backend.head, out["uem_logits"])
    want, ids = score_map("hyperspherical_llr", inputs, size, "image")
    torch.testing.assert_close(fused.llr, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(fused.class_ids, ids)
    # The LLR of the fused op's reference and uem_llr share the UEM term of the official order.
    seg = F.interpolate(out["seg_logits"], size=size, mode="bilinear", align_corners=False)
    u = F.interpolate(out["uem_logits"], size=size, mode="bilinear", align_corners=False)
    uem_part = fused.llr - score_map("weighted_normalized_energy", inputs, size, "image")[0]
    torch.testing.assert_close(uem_part, u[:, 1] - u[:, 0], rtol=1e-5, atol=1e-5)
    assert seg.shape[-2:] == fused.llr.shape[-2:]


# --- network keeps today's values exactly -------------------------------------------------------------------

@pytest.mark.parametrize("size", [(75, 130), (31, 47)])
def test_network_keeps_the_previous_values_exactly(backend, size):
    img = frame(*size, seed=7)
    out = network_outputs(backend, img)
    inputs = ScoreInputs(out["seg_logits"], out["embedding"], backend.head, out["uem_logits"])
    for name in ("uem_llr", "hyperspherical_llr", "energy"):
        grid = compute_score(name, inputs)
        want = F.interpolate(grid[None], size=size, mode="bilinear", align_corners=False)[0, 0].numpy()
        result = FramePipeline(backend, PipelineConfig(score=name, score_resolution="network")).process(img)
        np.testing.assert_array_equal(result.score, want)
        maps = eval_score_maps(backend, img, [name], size, {}, resolution="network")
        np.testing.assert_array_equal(maps[name], want)


def test_pipeline_batch_of_different_sizes(backend):
    frames = [frame(75, 130, seed=1), frame(31, 47, seed=2), frame(56, 112, seed=3)]
    pipeline = FramePipeline(backend, PipelineConfig(score="hyperspherical_llr"))
    batch = pipeline.process_batch(frames)
    for img, result in zip(frames, batch):
        single = pipeline.process(img)  # a batch of one: the network's own rounding differs slightly
        assert result.score.shape == img.shape[:2] and result.labels.shape == img.shape[:2]
        np.testing.assert_allclose(result.score, single.score, rtol=1e-5, atol=1e-5)
        assert (result.labels == single.labels).mean() > 0.999


def test_pipeline_resolution_changes_at_run_time(backend):
    img = frame(75, 130, seed=4)
    pipeline = FramePipeline(backend, PipelineConfig(score="uem_llr"))
    image = pipeline.process(img).score
    pipeline.update(score_resolution="network")
    network = pipeline.process(img).score
    assert image.shape == network.shape and not np.array_equal(image, network)
    from hypood_ros.errors import ConfigError

    with pytest.raises(ConfigError, match="score_resolution"):
        pipeline.update(score_resolution="camera")
    assert pipeline.config.score_resolution == "network"
