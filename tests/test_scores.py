"""Every registry score against an independent float64 NumPy formula, plus the invariances the method relies on."""
import numpy as np
import pytest
import torch

from hypood_ros.errors import ConfigError
from hypood_ros.head import HeadParams
from hypood_ros.scores import SCORES, ScoreInputs, SMLFitter, SMLStats, compute_score, minmax_normalize

B, D, K, H, W = 2, 16, 7, 5, 6


def make_case(seed=0, scale_z=1.0):
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(K, D, generator=g, dtype=torch.float64)
    b = torch.randn(K, generator=g, dtype=torch.float64)
    z = torch.randn(B, D, H, W, generator=g, dtype=torch.float64) * 3 * scale_z
    u = torch.randn(B, 2, 3, 3, generator=g, dtype=torch.float64)
    return M, b, z, u


def inputs_from(M, b, z, u=None, stats=None):
    f = torch.einsum("kd,bdhw->bkhw", M, z)
    head = HeadParams(weight_norm=M.norm(dim=1).float(), bias=b.float())
    return ScoreInputs(logits=(f + b.view(1, -1, 1, 1)).float(), embedding=z.float(), head=head,
                       uem_logits=None if u is None else u.float(), sml_stats=stats)


def np_reference(name, M, b, z, u, stats=None, eta=1.5, delta=0.3, lam=0.7):
    """The formulas of docs/SCORES.md, written again in float64 NumPy, pixels last."""
    M, b, z = M.numpy(), b.numpy(), z.numpy()
    f = np.einsum("kd,bdhw->bkhw", M, z)
    logits = f + b[None, :, None, None]
    zn = np.sqrt((z ** 2).sum(axis=1))
    w = np.sqrt((M ** 2).sum(axis=1))[None, :, None, None]

    def lse(a):
        m = a.max(axis=1)
        return m + np.log(np.exp(a - m[:, None]).sum(axis=1))

    softmax = np.exp(logits - lse(logits)[:, None])
    if name == "msp":
        return -softmax.max(axis=1)
    if name == "entropy":
        return -(softmax * np.log(softmax)).sum(axis=1)
    if name == "max_logit":
        return -logits.max(axis=1)
    if name == "energy":
        return -lse(logits)
    if name == "sml":
        k = logits.argmax(axis=1)
        mean, std = stats.mean.double().numpy(), stats.std.double().numpy()
        return -(logits.max(axis=1) - mean[k]) / std[k]
    if name == "norm":
        return -zn
    if name == "normalized_max_logit":
        return -(f / zn[:, None]).max(axis=1)
    if name == "normalized_energy":
        return -lse(f / zn[:, None])
    if name == "weighted_normalized_energy":
        return -lse(w ** (eta - 1) * f / zn[:, None])
    if name == "delta_max_logit":
        return -(f / zn[:, None] ** (1 - delta)).max(axis=1)
    # UEM: bilinear upsampling (align_corners=False) of u to the logit grid, done independently.
    uu = u.numpy()
    diff = np.zeros((B, H, W))
    hu, wu = uu.shape[2:]
    for y in range(H):
        for x in range(W):
            sy = max((y + 0.5) * hu / H - 0.5, 0.0)
            sx = max((x + 0.5) * wu / W - 0.5, 0.0)
            y0, x0 = int(sy), int(sx)
            y1, x1 = min(y0 + 1, hu - 1), min(x0 + 1, wu - 1)
            ly, lx = sy - y0, sx - x0
            d = uu[:, 1] - uu[:, 0]
            diff[:, y, x] = ((1 - ly) * ((1 - lx) * d[:, y0, x0] + lx * d[:, y0, x1])
                             + ly * ((1 - lx) * d[:, y1, x0] + lx * d[:, y1, x1]))
    if name == "uem_llr":
        return diff - logits.max(axis=1)
    if name == "hyperspherical_llr":
        return diff - lam * lse(w ** (eta - 1) * f / zn[:, None])
    raise AssertionError(name)


def test_registry_lists_every_design_score():
    assert set(SCORES) == {
        "msp", "entropy", "max_logit", "energy", "sml", "norm", "normalized_max_logit", "normalized_energy",
        "weighted_normalized_energy", "delta_max_logit", "uem_llr", "hyperspherical_llr",
    }


@pytest.mark.parametrize("name", sorted(SCORES))
def test_score_matches_float64_reference(name):
    M, b, z, u = make_case()
    stats = SMLStats(mean=torch.linspace(-1, 1, K), std=torch.linspace(0.5, 2.0, K))
    x = inputs_from(M, b, z, u, stats)
    got = compute_score(name, x, eta=1.5, delta=0.3, lam=0.7)
    want = np_reference(name, M, b, z, u, stats)
    assert got.dtype == torch.float32 and got.shape == (B, H, W)
    np.testing.assert_allclose(got.numpy(), want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", ["normalized_max_logit", "normalized_energy", "weighted_normalized_energy",
                                  "hyperspherical_llr"])
def test_normalized_scores_invariant_to_scaling_z(name):
    M, b, z, u = make_case(seed=1)
    base = compute_score(name, inputs_from(M, b, z, u))
    for c in (0.01, 7.0, 250.0):
        scaled = compute_score(name, inputs_from(M, b, z * c, u))
        torch.testing.assert_close(scaled, base, rtol=1e-4, atol=1e-4)
    # ...while the unnormalized energy is not.
    assert not torch.allclose(compute_score("energy", inputs_from(M, b, z * 7, u)),
                              compute_score("energy", inputs_from(M, b, z, u)), atol=1e-2)


def test_eta_one_is_normalized_energy():
    M, b, z, u = make_case(seed=2)
    x = inputs_from(M, b, z)
    torch.testing.assert_close(compute_score("weighted_normalized_energy", x, eta=1.0),
                               compute_score("normalized_energy", x))
    assert not torch.allclose(compute_score("weighted_normalized_energy", x, eta=1.5),
                              compute_score("normalized_energy", x))


def test_delta_limits():
    """Eq. 5.7: delta=0 is the normalized max logit; delta=1 is the raw max logit (of f, i.e. with zero bias)."""
    M, b, z, u = make_case(seed=3)
    x = inputs_from(M, b, z)
    torch.testing.assert_close(compute_score("delta_max_logit", x, delta=0.0),
                               compute_score("normalized_max_logit", x))
    x0 = inputs_from(M, torch.zeros_like(b), z)
    torch.testing.assert_close(compute_score("delta_max_logit", x0, delta=1.0), compute_score("max_logit", x0))


def test_argmax_unchanged_by_normalization():
    M, b, z, u = make_case(seed=4)
    x = inputs_from(M, torch.zeros_like(b), z)
    f = x.class_scores()
    assert torch.equal(f.argmax(1), (f / x.embedding_norm().unsqueeze(1)).argmax(1))


def test_zero_embedding_is_finite():
    M, b, z, u = make_case(seed=5)
    z[:, :, 0, 0] = 0
    x = inputs_from(M, b, z, u)
    for name in ["normalized_max_logit", "normalized_energy", "weighted_normalized_energy", "hyperspherical_llr",
                 "delta_max_logit"]:
        s = compute_score(name, x)
        assert torch.isfinite(s).all(), name
    # f = 0 there, so the normalized energy is -log K.
    torch.testing.assert_close(compute_score("normalized_energy", x)[:, 0, 0], torch.full((B,), -np.log(K)).float())


def test_fp16_inputs_are_scored_in_fp32():
    M, b, z, u = make_case(seed=6)
    x = inputs_from(M, b, z, u)
    half = ScoreInputs(x.logits.half(), x.embedding.half(), x.head, x.uem_logits.half())
    s = compute_score("hyperspherical_llr", half)
    assert s.dtype == torch.float32
    torch.testing.assert_close(s, compute_score("hyperspherical_llr", x), rtol=2e-2, atol=2e-2)


def test_sml_fitter_recovers_known_statistics():
    torch.manual_seed(0)
    n = 20000
    classes = torch.randint(0, 3, (n,))
    means, stds = torch.tensor([4.0, 6.0, 9.0]), torch.tensor([0.5, 1.0, 2.0])
    top = means[classes] + stds[classes] * torch.randn(n)
    logits = torch.full((1, 3, 1, n), -100.0)
    logits[0, classes, 0, torch.arange(n)] = top
    fitter = SMLFitter(3)
    fitter.update(logits[..., : n // 2])
    fitter.update(logits[..., n // 2:])
    stats = fitter.finish()
    torch.testing.assert_close(stats.mean, means, atol=0.08, rtol=0)
    torch.testing.assert_close(stats.std, stds, atol=0.08, rtol=0)
    assert SMLStats.from_dict(stats.to_dict()).mean.tolist() == stats.mean.tolist()


def test_clear_errors():
    M, b, z, u = make_case()
    x = inputs_from(M, b, z)
    with pytest.raises(ConfigError, match="unknown score"):
        compute_score("nope", x)
    with pytest.raises(ConfigError, match="UEM"):
        compute_score("uem_llr", x)
    with pytest.raises(ConfigError, match="statistics"):
        compute_score("sml", x)
    with pytest.raises(ConfigError, match="embedding shape"):
        ScoreInputs(x.logits, x.embedding[:, :, :2], x.head)


def test_minmax_normalize_per_image():
    s = torch.stack([torch.arange(6.0).view(2, 3), torch.full((2, 3), 4.0)])
    n = minmax_normalize(s)
    assert n[0].min() == 0 and n[0].max() == 1
    assert torch.all(n[1] == 0)
