"""The image order of the class-maximum scores from the winners' maps equals interpolating all K classes.

The reference is `registry._image_maps_all_classes`: every class interpolated at every output pixel, then the
formula (the definition, kept for the scores that need all classes). `FULL_BAND_SHARE = 1.0` forces the
winners' path on every band, the pixels it cannot decide going through their candidate classes. Every test
runs twice: with the undecided pixels done by the compiled loop (`class_max_native`, where the host has a
C++ compiler) and by PyTorch (`HYPOOD_NATIVE_SCORES=0`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hypood_ros.native_build import compiler
from hypood_ros.preprocess import preprocess
from hypood_ros.runtimes import load_backend
from hypood_ros.runtimes.base import HeadParams
from hypood_ros.scores import SCORES, ScoreInputs, SMLStats, class_max, class_max_native, registry, score_maps
from hypood_ros.scores.class_max import ClassMaxPlan

COVERED = [name for name, spec in SCORES.items() if spec.reads_classes != "all"]
BITWISE = ["max_logit", "sml", "norm", "normalized_max_logit"]  # same products, sums and divisions
# uem_llr interpolates u_1 - u_0 once instead of u_1 and u_0: equal to float32 rounding of the UEM logits
UEM_ULPS = 8
SIZES = [(33, 47), (203, 317), (12, 20), (5, 41), (1, 1), (24, 20)]  # larger, odd, equal, mixed, 1x1, one axis
PARAMS = {"delta": 0.3}
DEMO = Path(__file__).resolve().parents[1] / "models" / "demo" / "model.pt"


@pytest.fixture(autouse=True)
def winners_everywhere(monkeypatch):
    monkeypatch.setattr(class_max, "FULL_SHARE", 1.0)


@pytest.fixture(autouse=True, params=["loop", "pytorch"])
def undecided_by(request, monkeypatch):
    """Who does the undecided pixels: the compiled loop or PyTorch."""
    if request.param == "loop":
        if compiler() is None:
            pytest.skip("no host C++ compiler")
        monkeypatch.setenv("HYPOOD_NATIVE_SCORES", "1")
        assert class_max_native.library() is not None
    else:
        monkeypatch.setenv("HYPOOD_NATIVE_SCORES", "0")
    return request.param


def with_sml(inputs: ScoreInputs) -> ScoreInputs:
    k = inputs.num_classes
    g = torch.Generator().manual_seed(7)
    inputs.sml_stats = SMLStats(torch.randn(k, generator=g), torch.rand(k, generator=g) + 0.5)
    return inputs


def smooth_inputs(b=2, k=19, d=16, h=12, w=20, seed=0) -> ScoreInputs:
    """Class regions a few cells wide (as a segmentation gives) plus per-cell noise."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(b, d, h, w, generator=g)
    bias = torch.randn(k, generator=g)
    coarse = torch.randn(b, k, max(1, h // 6), max(1, w // 6), generator=g) * 5
    logits = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    logits = logits + 0.1 * torch.randn(b, k, h, w, generator=g)
    uem = torch.randn(b, 2, max(1, h // 4), max(1, w // 4), generator=g)
    return with_sml(ScoreInputs(logits, emb, HeadParams(torch.rand(k, generator=g) + 0.5, bias), uem))


def assert_same(inputs: ScoreInputs, size, names=COVERED):
    fast, ids = score_maps(names, inputs, size, "image", **PARAMS)
    want, want_ids = registry._image_maps_all_classes(names, inputs, tuple(size), **PARAMS)
    assert torch.equal(ids, want_ids)
    for name in names:
        if name in BITWISE:
            assert torch.equal(fast[name], want[name]), name
        elif name == "uem_llr":
            scale = float(inputs.uem_logits.abs().max())
            torch.testing.assert_close(fast[name], want[name], rtol=0, atol=UEM_ULPS * 2.0 ** -23 * scale, msg=name)
        else:  # delta_max_logit: pow may round its last bit by tensor layout
            torch.testing.assert_close(fast[name], want[name], rtol=1e-6, atol=0, msg=name)
    return fast, ids


def undecided_share(inputs, size, class_scores=True) -> float:
    return ClassMaxPlan(inputs, size, class_scores).undecided_share


@pytest.mark.parametrize("size", SIZES)
def test_random_inputs_every_covered_score(size):
    inputs = smooth_inputs(seed=size[0])
    assert_same(inputs, size)


def test_the_winners_decide_most_pixels_of_smooth_inputs():
    inputs = smooth_inputs(h=24, w=40)
    assert undecided_share(inputs, (203, 317)) < 0.6  # the winners decide a good part (borders are many here)
    assert undecided_share(inputs, (24, 40)) < 0.2


def test_the_fast_path_does_not_interpolate_the_classes(monkeypatch):
    inputs = smooth_inputs(h=24, w=40)
    monkeypatch.setattr(ScoreInputs, "resized", lambda *a, **k: pytest.fail("K channels interpolated"))
    score_maps(COVERED, inputs, (100, 160), "image", **PARAMS)


def test_bands_and_the_all_classes_fallback(monkeypatch):
    inputs = smooth_inputs(h=16, w=24)
    monkeypatch.setattr(registry, "CLASS_MAX_BAND_PIXELS", 2 * 317 * 5)
    assert len(registry._bands(inputs, (203, 317), registry.CLASS_MAX_BAND_PIXELS)) == 41
    assert_same(inputs, (203, 317))
    monkeypatch.setattr(class_max, "FULL_SHARE", 0.0)  # the frame has undecided pixels: all classes
    monkeypatch.setattr(ClassMaxPlan, "band", lambda *a: pytest.fail("winners' path taken"))
    assert_same(inputs, (203, 317))


def test_independent_random_logits():
    """Every 2x2 block disagrees: all pixels go through their candidate classes."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 19, 9, 13, generator=g)
    inputs = with_sml(ScoreInputs(logits, torch.randn(1, 8, 9, 13, generator=g),
                                  HeadParams(torch.rand(19, generator=g) + 0.5, torch.randn(19, generator=g)),
                                  torch.randn(1, 2, 3, 4, generator=g)))
    assert undecided_share(inputs, (40, 57)) > 0.9
    assert_same(inputs, (40, 57))


def test_ties_between_classes():
    # Integer logits from a small range: many exact ties at cells, resolved to the first class as torch.argmax.
    g = torch.Generator().manual_seed(4)
    logits = torch.randint(0, 3, (2, 6, 10, 14), generator=g).float()
    logits[:, :, :5, :7] = 2.0  # a block where all classes tie
    logits[:, 3, 5:, 7:] = 5.0  # a block with a clear winner
    inputs = with_sml(ScoreInputs(logits, torch.randn(2, 4, 10, 14, generator=g),
                                  HeadParams(torch.ones(6), torch.zeros(6)), torch.randn(2, 2, 3, 4, generator=g)))
    for size in [(37, 53), (10, 14), (20, 28)]:
        _, ids = assert_same(inputs, size)
        assert (ids == 3).any() and (ids == 0).any()


def test_near_ties_need_the_margin(monkeypatch):
    """Class 1 above class 0 by one float32 step at every cell: interpolation can round them equal, and then
    torch.argmax says 0. Without the margin the winners' path says 1 there; with it, the pixel is undecided."""
    g = torch.Generator().manual_seed(5)
    base = torch.randn(1, 1, 12, 16, generator=g) * 100
    logits = torch.cat([base, torch.nextafter(base, torch.full_like(base, float("inf")))], dim=1)
    inputs = ScoreInputs(logits, torch.randn(1, 4, 12, 16, generator=g), HeadParams(torch.ones(2), torch.zeros(2)))
    size = (61, 83)
    _, want_ids = registry._image_maps_all_classes(["max_logit"], inputs, size)
    assert (want_ids == 0).any() and (want_ids == 1).any()  # rounding made ties
    assert_same(inputs, size, ["max_logit"])
    monkeypatch.setattr(class_max, "MARGIN", 0.0)
    monkeypatch.setattr(class_max, "_TINY", 0.0)
    _, ids = score_maps(["max_logit"], inputs, size, "image")
    assert not torch.equal(ids, want_ids)


def test_zero_embeddings():
    # Zero embedding: f = 0 for every class, logits = bias; the normalized scores divide by the 1e-6 clamp.
    inputs = smooth_inputs(h=12, w=20, seed=9)
    inputs.embedding[:, :, 3:7, 5:11] = 0.0
    inputs.embedding[:, :, 9, 2] = 0.0  # an isolated cell
    inputs.logits[:, :, 3:7, 5:11] = inputs.head.bias.view(1, -1, 1, 1)
    inputs.logits[:, :, 9, 2] = inputs.head.bias.view(1, -1)
    for size in [(55, 91), (12, 20), (6, 9)]:
        fast, _ = assert_same(inputs, size)
        assert torch.isfinite(fast["normalized_max_logit"]).all()


def test_one_class_and_non_finite_cells():
    g = torch.Generator().manual_seed(6)
    one = ScoreInputs(torch.randn(1, 1, 6, 8, generator=g), torch.randn(1, 3, 6, 8, generator=g),
                      HeadParams(torch.ones(1), torch.zeros(1)), torch.randn(1, 2, 2, 2, generator=g))
    assert_same(with_sml(one), (17, 23))
    inputs = smooth_inputs(b=1, h=8, w=10, seed=2)
    inputs.logits[0, 4, 3, 3] = float("inf")
    inputs.logits[0, :, 6, 7] = -float("inf")
    fast, ids = score_maps(["max_logit", "uem_llr"], inputs, (31, 41), "image")
    want, want_ids = registry._image_maps_all_classes(["max_logit", "uem_llr"], inputs, (31, 41))
    assert torch.equal(ids, want_ids)
    uem_atol = UEM_ULPS * 2.0 ** -23 * float(inputs.uem_logits.abs().max())
    for name, atol in (("max_logit", 0.0), ("uem_llr", uem_atol)):
        torch.testing.assert_close(fast[name], want[name], rtol=0, atol=atol, equal_nan=True)


def _model_inputs(path, input_hw, seed):
    backend = load_backend(path, input_hw=input_hw)
    rgb = np.random.default_rng(seed).integers(0, 256, (input_hw[0], input_hw[1], 3), dtype=np.uint8)
    rgb[: input_hw[0] // 2] = (70, 130, 180)  # a sky and a road: regions, as a camera gives
    rgb[input_hw[0] // 2:] = (128, 64, 128)
    with torch.no_grad():
        out = backend.run(preprocess([rgb], input_hw, "cpu"))
    return with_sml(ScoreInputs(out["seg_logits"], out["embedding"], backend.head, out["uem_logits"]))


@pytest.mark.parametrize("size", [(56, 112), (75, 130), (31, 47), (121, 243)])
def test_tiny_model_outputs(tiny_checkpoint, size):
    assert_same(_model_inputs(tiny_checkpoint, (56, 112), 0), size)


@pytest.mark.skipif(not DEMO.exists(), reason="the shipped demo model is not in this checkout")
def test_demo_model_outputs():
    inputs = _model_inputs(DEMO, (112, 224), 1)
    for size in [(240, 480), (113, 227)]:
        assert_same(inputs, size)


def test_a_class_that_wins_no_cell_can_win_between_them():
    # Cells (10, 0, 6) and (0, 10, 6): class 2 wins neither cell but wins midway (5, 5, 6).
    logits = torch.tensor([[10.0, 0.0], [0.0, 10.0], [6.0, 6.0]]).view(1, 3, 1, 2)
    inputs = with_sml(ScoreInputs(logits, torch.ones(1, 2, 1, 2), HeadParams(torch.ones(3), torch.zeros(3)),
                                  torch.zeros(1, 2, 1, 2)))
    _, ids = assert_same(inputs, (1, 9))
    assert set(ids.unique().tolist()) == {0, 1, 2}


def test_undecided_blocks_interpolate_few_classes(undecided_by):
    inputs = smooth_inputs(h=24, w=40)
    plan = ClassMaxPlan(inputs, (203, 317), False)
    if undecided_by == "loop":  # the loop chooses its candidates inside; it did every block
        assert plan.tiers == [(plan._blocks[0].numel(), ())] and plan._blocks[0].numel() > 0
    else:
        assert 1 < plan.tiers[0][1][0] < inputs.num_classes  # more than one class at a border, far from all


def test_the_loop_leaves_pytorch_only_the_blocks_with_values_not_finite(undecided_by, monkeypatch):
    if undecided_by != "loop":
        pytest.skip("about the compiled loop")
    calls = []
    maxima = ClassMaxPlan._maxima
    monkeypatch.setattr(ClassMaxPlan, "_maxima", lambda self, mine, *a, **k: (calls.append(mine.numel()),
                                                                             maxima(self, mine, *a, **k)))
    with monkeypatch.context() as m:  # the winners' maps too are the loop's
        m.setattr(class_max, "interpolate_rows", lambda *a, **k: pytest.fail("PyTorch interpolated the winners"))
        assert_same(smooth_inputs(h=12, w=20, seed=3), (55, 91), names=["max_logit", "normalized_max_logit"])
    assert calls == []
    inputs = smooth_inputs(b=1, h=8, w=10, seed=2)
    inputs.logits[0, 4, 3, 3] = float("nan")
    plan = ClassMaxPlan(inputs, (31, 41), True)
    assert sum(calls) == plan._blocks[0].numel() == 4  # the 4 blocks that read cell (3, 3)
    fast, ids = score_maps(["max_logit", "normalized_max_logit"], inputs, (31, 41), "image")
    want, want_ids = registry._image_maps_all_classes(["max_logit", "normalized_max_logit"], inputs, (31, 41))
    assert torch.equal(ids, want_ids)
    for name in fast:
        torch.testing.assert_close(fast[name], want[name], rtol=0, atol=0, equal_nan=True)


def test_a_failed_build_of_the_loop_leaves_pytorch_the_work(undecided_by, monkeypatch, tmp_path, caplog):
    if undecided_by != "loop":
        pytest.skip("about the compiled loop")
    monkeypatch.setattr(class_max_native, "_state", {})
    monkeypatch.setenv("HYPOOD_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # a "compiler" that fails every build
    with caplog.at_level("WARNING"):
        assert class_max_native.library() is None
    assert [r.getMessage() for r in caplog.records if "compiled loop" in r.getMessage()]
    assert list(tmp_path.rglob("*.so")) == []  # nothing half-built is left to load
    assert_same(smooth_inputs(h=12, w=20, seed=4), (33, 47))


@pytest.mark.parametrize("band_pixels", [None, 2 * 47 * 3])
def test_gradients_equal_the_all_classes_path(monkeypatch, band_pixels):
    """The LLR training loss differentiates uem_llr at `image`: one band and many give its gradients."""
    if band_pixels:
        monkeypatch.setattr(registry, "CLASS_MAX_BAND_PIXELS", band_pixels)
    base = smooth_inputs(h=10, w=14, seed=11)
    grads = []
    for path in ("fast", "all"):
        logits = base.logits.clone().requires_grad_(True)
        uem = base.uem_logits.clone().requires_grad_(True)
        inputs = ScoreInputs(logits, base.embedding, base.head, uem)
        if path == "fast":
            maps, _ = score_maps(["uem_llr", "max_logit"], inputs, (33, 47), "image")
        else:
            maps, _ = registry._image_maps_all_classes(["uem_llr", "max_logit"], inputs, (33, 47))
        (maps["uem_llr"].square().mean() + maps["max_logit"].mean()).backward()
        grads.append((logits.grad, uem.grad))
    for fast, want in zip(*grads):
        torch.testing.assert_close(fast, want, rtol=1e-6, atol=1e-7)
