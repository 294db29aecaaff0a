"""The fused kernel's own source, built with the host C++ compiler, against the scores registry.

Each case runs the CUDA path's preparation and argument packing (`kernel_fused_scores`, `pack_fused`)
and executes the packed launches on the CPU build over the launcher's whole grid. Outputs are written
into slices of larger poisoned buffers: every output element must be written, nothing past the end.
"""
import dataclasses
import re

import pytest
import torch

from hypood_ros.errors import ConfigError
from hypood_ros.kernels import FusedArgs, fused_scores, launch, reference_fused_scores
from hypood_ros.kernels.compile import SOURCE_PATH
from hypood_ros.kernels.cpu_build import KernelArgumentError, compiler, cpu_kernel_fused_scores, load
from hypood_ros.kernels.fused import FusedScores
from hypood_ros.runtimes.base import HeadParams
from hypood_ros.scores import ScoreInputs
from hypood_ros.scores.registry import score_map

pytestmark = pytest.mark.skipif(compiler() is None, reason="no host C++ compiler")

REL = 1e-5  # |kernel - registry| <= REL * max(1, |registry|)
SPARE = 300  # poisoned elements after each output, to catch writes past the grid's guard


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """Built from source for this test run (not from a cache of earlier runs)."""
    return load(tmp_path_factory.mktemp("cpu_kernel"))


def make_inputs(b=2, d=256, k=19, h=13, w=21, uem_hw=(5, 7), dtype=torch.float32, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(b, d, h, w, generator=g)
    M = torch.randn(k, d, generator=g) * scale
    bias = torch.randn(k, generator=g)
    logits = torch.einsum("kd,bdhw->bkhw", M, emb) + bias.view(1, -1, 1, 1)
    uem = None if uem_hw is None else torch.randn(b, 2, *uem_hw, generator=g).to(dtype)
    return emb.to(dtype), logits.to(dtype), HeadParams(M.norm(dim=1), bias), uem


def poisoned(shape, uem):
    n = 1
    for s in shape:
        n *= s

    def buf(fill, dtype):
        big = torch.full((n + SPARE,), fill, dtype=dtype)
        return big, big[:n].view(shape)

    bufs = {"class_ids": buf(254, torch.uint8), "energy": buf(float("nan"), torch.float32),
            "llr": buf(float("nan"), torch.float32) if uem is not None else None}
    out = FusedScores(**{name: None if v is None else v[1] for name, v in bufs.items()})
    spares = [v[0][n:] for v in bufs.values() if v is not None]
    return out, spares


def run_cpu(kernels, emb, logits, head, uem, out_size=None, eta=1.3, lam=0.8):
    b, _, h, w = logits.shape
    shape = (b, *(out_size or (h, w)))
    out, spares = poisoned(shape, uem)
    got = cpu_kernel_fused_scores(FusedArgs(emb, logits, head, eta, uem, lam, out_size=out_size), out=out,
                                  kernels=kernels)
    for spare in spares:
        assert (spare == 254).all() or spare.isnan().all(), "write past the grid's guard"
    return got


def rel_err(a, r):
    return ((a.double() - r.double()).abs() / r.double().abs().clamp_min(1)).max().item()


def registry(emb, logits, head, uem, out_size=None, eta=1.3, lam=0.8):
    """The definition: compute_score at the network grid, score_map(..., "image") at an output size."""
    x = ScoreInputs(logits, emb, head, uem)
    if out_size is None:
        from hypood_ros.scores import compute_score
        energy = compute_score("weighted_normalized_energy", x, eta=eta)
        llr = compute_score("hyperspherical_llr", x, eta=eta, lam=lam) if uem is not None else None
        ids = logits.argmax(dim=1).to(torch.uint8)
    else:
        energy, ids = score_map("weighted_normalized_energy", x, out_size, "image", eta=eta)
        llr = score_map("hyperspherical_llr", x, out_size, "image", eta=eta, lam=lam)[0] if uem is not None else None
    return ids, energy, llr


def check(got, emb, logits, head, uem, out_size=None):
    ids, energy, llr = registry(emb, logits, head, uem, out_size)
    assert got.class_ids.shape == ids.shape
    assert torch.equal(got.class_ids, ids), "class ids differ from torch.argmax"
    assert torch.isfinite(got.energy).all()
    assert rel_err(got.energy, energy) <= REL
    if uem is None:
        assert got.llr is None
    else:
        assert torch.isfinite(got.llr).all()
        assert rel_err(got.llr, llr) <= REL


DTYPES = [torch.float32, torch.float16]
NETWORK_CASES = {
    # name: make_inputs keywords
    "odd_sizes_uem_smaller": dict(b=2, d=256, k=19, h=13, w=21, uem_hw=(5, 7)),
    "uem_larger": dict(b=3, d=32, k=19, h=7, w=11, uem_hw=(17, 29)),
    "uem_same_grid": dict(b=2, d=16, k=19, h=9, w=15, uem_hw=(9, 15)),
    "k1_d1": dict(b=2, d=1, k=1, h=9, w=31, uem_hw=(4, 9)),
    "k19_d1": dict(b=2, d=1, k=19, h=11, w=5, uem_hw=(3, 2)),
    "k1_d256": dict(b=2, d=256, k=1, h=5, w=9, uem_hw=(2, 3)),
    "no_uem": dict(b=2, d=64, k=19, h=13, w=21, uem_hw=None),
    "huge_logits": dict(b=2, d=8, k=19, h=9, w=13, uem_hw=(3, 5), scale=1e3),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", list(NETWORK_CASES))
def test_network_mode_equals_registry(kernels, case, dtype):
    emb, logits, head, uem = make_inputs(dtype=dtype, **NETWORK_CASES[case])
    if case == "huge_logits":  # exp() of the normalized values overflows fp32 (> 88) without the online max
        f = logits.float() - head.bias.view(1, -1, 1, 1)
        v = head.weight_norm.pow(0.3).view(1, -1, 1, 1) * f / emb.float().norm(dim=1, keepdim=True)
        assert v.amax() > 1000 and torch.isfinite(logits).all()
    got = run_cpu(kernels, emb, logits, head, uem)
    check(got, emb, logits, head, uem)


# Output sizes against the 13 x 21 network grid: equal, larger (odd ratios), smaller, mixed.
IMAGE_SIZES = [(13, 21), (40, 67), (29, 43), (7, 9), (5, 20), (31, 8), (1, 1)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("size", IMAGE_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_image_mode_equals_registry(kernels, size, dtype):
    emb, logits, head, uem = make_inputs(b=2, d=256, k=19, h=13, w=21, uem_hw=(5, 7), dtype=dtype, seed=3)
    got = run_cpu(kernels, emb, logits, head, uem, out_size=size)
    check(got, emb, logits, head, uem, out_size=size)


IMAGE_CASES = {
    # name: (make_inputs keywords, out_size)
    "uem_larger_than_logits": (dict(b=2, d=16, k=19, h=6, w=9, uem_hw=(15, 23)), (19, 37)),
    "uem_larger_than_output": (dict(b=2, d=16, k=19, h=6, w=9, uem_hw=(15, 23)), (11, 13)),
    "uem_equals_output": (dict(b=2, d=16, k=19, h=6, w=9, uem_hw=(17, 25)), (17, 25)),
    "k1_d1": (dict(b=2, d=1, k=1, h=5, w=7, uem_hw=(2, 3)), (23, 19)),
    "k1_d256": (dict(b=2, d=256, k=1, h=5, w=7, uem_hw=(2, 3)), (9, 30)),
    "no_uem_larger": (dict(b=3, d=32, k=19, h=8, w=5, uem_hw=None), (33, 17)),
    "no_uem_smaller": (dict(b=1, d=32, k=19, h=8, w=5, uem_hw=None), (3, 4)),
    "huge_logits": (dict(b=2, d=8, k=19, h=6, w=9, uem_hw=(3, 4), scale=1e3), (25, 31)),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_image_mode_cases_equal_registry(kernels, case, dtype):
    kw, size = IMAGE_CASES[case]
    emb, logits, head, uem = make_inputs(dtype=dtype, seed=7, **kw)
    got = run_cpu(kernels, emb, logits, head, uem, out_size=size)
    check(got, emb, logits, head, uem, out_size=size)


@pytest.mark.parametrize("out_size", [None, (13, 21), (27, 50)], ids=["network", "image_equal", "image_larger"])
def test_zero_embeddings(kernels, out_size):
    emb, logits, head, uem = make_inputs(b=2, d=64, k=19, h=13, w=21, uem_hw=(4, 6), seed=5)
    zero = torch.zeros(13, 21, dtype=torch.bool)
    zero[1::3, 1::4] = True  # isolated zero cells, none at an edge
    emb[0, :, zero] = 0
    if out_size is None:
        emb[1] = 0  # a whole zero frame: f = 0 exactly, every normalized value 0
    # At image resolution f/||z|| is interp(f+b)-b over the clamped interp(||z||): where every neighbour
    # is a zero cell it divides rounding noise by NORM_EPS, and torch's interpolation (which rounds some
    # channels differently from others) and the kernel legitimately disagree there. Isolated cells away
    # from the edges at this size are sampled with weights >= 1/54, where the quotient is well conditioned.
    zero_cells = emb.abs().sum(1, keepdim=True) == 0
    logits = torch.where(zero_cells, head.bias.view(1, -1, 1, 1), logits)  # f = M z = 0 there
    if out_size in (None, (13, 21)):  # norms below NORM_EPS with f != 0: the clamp's value matters
        tiny = torch.zeros(13, 21, dtype=torch.bool)
        tiny[2::3, 2::4] = True
        emb[0, :, tiny] = 1e-9 * torch.randn(64, int(tiny.sum()), generator=torch.Generator().manual_seed(1))
        logits[0, :, tiny] = head.bias.view(-1, 1) + 1e-5 * torch.randn(19, int(tiny.sum()))
    got = run_cpu(kernels, emb, logits, head, uem, out_size=out_size)
    check(got, emb, logits, head, uem, out_size=out_size)
    if out_size is None:  # normalized logits all 0: energy -log K
        torch.testing.assert_close(got.energy[1], torch.full((13, 21), -torch.log(torch.tensor(19.0)).item()))


@pytest.mark.parametrize("out_size", [None, (12, 20), (24, 40), (48, 80), (6, 10)],
                         ids=["network", "eq", "up2", "up4", "down2"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
def test_ties_resolve_to_first_class_as_torch_argmax(kernels, out_size, dtype):
    emb, logits, head, uem = make_inputs(b=2, d=16, k=19, h=12, w=20, uem_hw=(5, 7), seed=11)
    # Ties that survive interpolation exactly: constant planes sampled with dyadic weights (ratios 2 and
    # 4), which every code path reproduces bit for bit. At other ratios torch's CPU interpolation itself
    # returns a constant plane one bit off in some channels and not others, so its argmax sees no tie.
    logits = logits.clamp(max=7.0)
    logits[0, 4] = logits[0, 9] = logits[0, 17] = 8.0  # classes 4, 9, 17 share the maximum everywhere
    logits[1] = 2.0  # every class ties
    emb, logits, uem = emb.to(dtype), logits.to(dtype), uem.to(dtype)
    got = run_cpu(kernels, emb, logits, head, uem, out_size=out_size)
    check(got, emb, logits, head, uem, out_size=out_size)
    assert (got.class_ids[0] == 4).all() and (got.class_ids[1] == 0).all()


def test_image_mode_differs_from_network_order(kernels):
    """Where the max switches class between neighbouring cells, max and interpolation do not commute."""
    emb, logits, head, uem = make_inputs(b=1, d=8, k=2, h=2, w=2, uem_hw=(2, 2), seed=2)
    logits = torch.tensor([[[[4.0, -4.0], [4.0, -4.0]], [[-4.0, 4.0], [-4.0, 4.0]]]])
    image = run_cpu(kernels, emb, logits, head, uem, out_size=(4, 4))
    network = fused_scores(FusedArgs(emb, logits, head, 1.3, uem, 0.8))
    upsampled = torch.nn.functional.interpolate(network.llr[:, None], size=(4, 4), mode="bilinear",
                                                align_corners=False)[:, 0]
    assert (image.llr - upsampled).abs().max() > 0.1
    check(image, emb, logits, head, uem, out_size=(4, 4))


def test_public_cpu_path_is_the_registry():
    emb, logits, head, uem = make_inputs(b=2, d=16, k=19, h=13, w=21, uem_hw=(5, 7), seed=4)
    out = fused_scores(FusedArgs(emb, logits, head, 1.3, uem, 0.8, out_size=(29, 43)))
    ids, energy, llr = registry(emb, logits, head, uem, (29, 43))
    assert torch.equal(out.class_ids, ids) and torch.equal(out.energy, energy) and torch.equal(out.llr, llr)
    ref = reference_fused_scores(FusedArgs(emb, logits, head, 1.3, uem, 0.8, out_size=(29, 43)))
    assert torch.equal(ref.llr, out.llr)
    for bad in [(0, 5), (3,), (4, -1)]:
        with pytest.raises(ConfigError, match="out_size"):
            fused_scores(FusedArgs(emb, logits, head, out_size=bad))


def test_cpu_build_has_every_kernel_of_the_source(kernels):
    declared = re.findall(r'extern "C" __global__ void (\w+)\(', SOURCE_PATH.read_text())
    assert sorted(declared) == sorted(launch.KERNELS) == sorted(kernels.names())
    assert kernels.signature("fused_image_f16")[:2] == ("const float*", "const unsigned short*")


def test_half_conversion_is_exact_for_every_fp16_value(kernels):
    halves = torch.arange(-(2 ** 15), 2 ** 15, dtype=torch.int32).to(torch.int16).view(torch.float16)
    got, want = kernels.half_to_float(halves), halves.float()
    nan = want.isnan()
    assert torch.equal(got.isnan(), nan) and nan.sum() == 2 * (2 ** 10 - 1)
    assert torch.equal(got[~nan].view(torch.int32), want[~nan].view(torch.int32))  # bit for bit, signed zeros too


# ---- a launcher that disagrees with the kernel must fail here, not only on a GPU ------------------------

def _swap(monkeypatch, kernel_prefix, i, j, with_types):
    original = launch.pack_fused

    def pack(*args, **kwargs):
        launches = original(*args, **kwargs)
        for n, item in enumerate(launches):
            if item.name.startswith(kernel_prefix):
                values, types = list(item.values), list(item.types)
                values[i], values[j] = values[j], values[i]
                if with_types:
                    types[i], types[j] = types[j], types[i]
                launches[n] = dataclasses.replace(item, values=tuple(values), types=tuple(types))
        return launches

    monkeypatch.setattr(launch, "pack_fused", pack)


def test_swapped_same_type_arguments_change_the_results(kernels, monkeypatch):
    emb, logits, head, uem = make_inputs(b=2, d=16, k=19, h=13, w=21, uem_hw=(5, 7), seed=9)
    check(run_cpu(kernels, emb, logits, head, uem, out_size=(29, 43)), emb, logits, head, uem, (29, 43))
    # fused_image_*: (norms, logits, wfac, bias, uem, B, K, h, w, H, W, ...): swap the output H and W
    assert kernels.signature("fused_image_f32")[9:11] == ("int", "int")
    _swap(monkeypatch, "fused_image", 9, 10, with_types=False)
    got = run_cpu(kernels, emb, logits, head, uem, out_size=(29, 43))
    with pytest.raises(AssertionError):
        check(got, emb, logits, head, uem, (29, 43))
    monkeypatch.undo()
    # fused_scores_*: (..., lam, class_ids, energy, llr): swap the energy and llr outputs
    assert kernels.signature("fused_scores_f32")[14:16] == ("float*", "float*")
    _swap(monkeypatch, "fused_scores", 14, 15, with_types=False)
    got = run_cpu(kernels, emb, logits, head, uem)
    with pytest.raises(AssertionError):
        check(got, emb, logits, head, uem)


def test_swapped_arguments_of_different_types_are_refused(kernels, monkeypatch):
    # 2 x 8 x 16 cells: exactly one block, so a batch size misread as a huge count lets no thread past the data
    emb, logits, head, uem = make_inputs(b=2, d=16, k=19, h=8, w=16, uem_hw=(3, 5), seed=9)
    b, _, h, w = logits.shape
    assert (b * h * w) % launch.THREADS_PER_BLOCK == 0
    # fused_scores_*: B (int) at 5 and lam (float) at 12, packed in each other's place with their own types
    assert (kernels.signature("fused_scores_f32")[5], kernels.signature("fused_scores_f32")[12]) == ("int", "float")
    _swap(monkeypatch, "fused_scores", 5, 12, with_types=True)
    with pytest.raises(KernelArgumentError, match="fused_scores_f32: packed"):
        run_cpu(kernels, emb, logits, head, uem)
    # Without the check the kernel reads each value as the type it declares: lam is the int 2's bits as a
    # float (about 3e-45), so the LLR comes out as with lam = 0; class ids and energy are still right.
    ids = torch.full((b, h, w), 254, dtype=torch.uint8)
    energy, llr = torch.full((b, h, w), float("nan")), torch.full((b, h, w), float("nan"))
    wfac, bias = head.weight_norm.pow(1.3 - 1.0).contiguous(), head.bias.contiguous()
    packed = launch.KernelInputs(emb, logits.contiguous(), wfac, bias, uem, 0.8)
    for item in launch.pack_fused(packed, (ids, energy, llr)):
        kernels.launch(item, check_types=False)
    ref_ids, ref_energy, ref_llr = registry(emb, logits, head, uem)
    assert torch.equal(ids, ref_ids) and rel_err(energy, ref_energy) <= REL
    assert rel_err(llr, ref_llr) > 0.1
    assert rel_err(llr, registry(emb, logits, head, uem, lam=0.0)[2]) <= REL


def test_pointer_dtype_mismatch_is_refused_by_the_packer():
    emb, logits, head, uem = make_inputs(b=1, d=4, k=3, h=3, w=3, uem_hw=(2, 2))
    outputs = (torch.empty((1, 3, 3), dtype=torch.uint8), torch.empty((1, 3, 3)), torch.empty((1, 3, 3)))
    with pytest.raises(ValueError, match="contiguous torch.float16"):
        launch.pack_fused(launch.KernelInputs(emb.half(), logits.half(), head.weight_norm, head.bias, uem, 1.0),
                          outputs)
