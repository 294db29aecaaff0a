"""The fused score op: CPU dispatch equals the registry; the CUDA source compiles for every target GPU."""
import shutil
import subprocess

import pytest
import torch

from hypood_ros.head import HeadParams
from hypood_ros.kernels import FusedArgs, fused_scores
from hypood_ros.kernels.compile import SOURCE_PATH, compile_kernel
from hypood_ros.kernels.launch import KERNELS
from hypood_ros.scores import ScoreInputs, compute_score


def random_outputs(b=2, d=32, k=19, h=12, w=20, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(b, d, h, w, generator=g)
    emb[0, :, 0, 0] = 0  # a zero embedding must not produce NaN
    M = torch.randn(k, d, generator=g)
    bias = torch.randn(k, generator=g)
    logits = torch.einsum("kd,bdhw->bkhw", M, emb) + bias.view(1, -1, 1, 1)
    uem = torch.randn(b, 2, h // 4, w // 4, generator=g)
    head = HeadParams(M.norm(dim=1), bias)
    return (emb.to(device, dtype), logits.to(device, dtype), head.to(device), uem.to(device, dtype))


def test_cpu_dispatch_equals_registry():
    emb, logits, head, uem = random_outputs()
    out = fused_scores(FusedArgs(emb, logits, head, eta=1.3, uem_logits=uem, lam=0.8))
    x = ScoreInputs(logits, emb, head, uem)
    torch.testing.assert_close(out.energy, compute_score("weighted_normalized_energy", x, eta=1.3), rtol=0, atol=0)
    torch.testing.assert_close(out.llr, compute_score("hyperspherical_llr", x, eta=1.3, lam=0.8), rtol=0, atol=0)
    assert torch.equal(out.class_ids, logits.argmax(1).to(torch.uint8))
    assert torch.isfinite(out.energy).all() and torch.isfinite(out.llr).all()


def test_cpu_dispatch_without_uem_has_no_llr():
    emb, logits, head, _ = random_outputs(seed=1)
    out = fused_scores(FusedArgs(emb, logits, head))
    assert out.llr is None and out.score is out.energy
    x = ScoreInputs(logits, emb, head)
    torch.testing.assert_close(out.energy, compute_score("weighted_normalized_energy", x), rtol=0, atol=0)


def test_out_size_is_keyword_only():
    """A caller still passing a threshold after lam (the op once made a mask) is refused, not misread."""
    emb, logits, head, uem = random_outputs(seed=2)
    with pytest.raises(TypeError):
        FusedArgs(emb, logits, head, 1.5, uem, 1.0, (24, 40))
    assert FusedArgs(emb, logits, head, 1.5, uem, 1.0, out_size=(24, 40)).size() == (24, 40)


@pytest.mark.parametrize("arch", ["sm_75", "sm_87", "sm_90"])
def test_kernel_compiles_with_nvrtc(arch, tmp_path, monkeypatch):
    pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-python (NVRTC) not installed")
    monkeypatch.setenv("HYPOOD_KERNEL_CACHE", str(tmp_path))
    ptx = compile_kernel(arch, "ptx", use_disk_cache=False)
    for name in KERNELS:
        assert f".entry {name}(".encode() in ptx
    assert f".target {arch}".encode() in ptx
    cubin = compile_kernel(arch, "cubin")
    assert cubin[:4] == b"\x7fELF"
    # NVRTC fills buffers in place: it must never have written into an interned bytes object.
    assert bytes([32]) == b" " and b" " * 1 == b"\x20"
    digest = __import__("hashlib").sha256(SOURCE_PATH.read_bytes()).hexdigest()[:16]
    assert (tmp_path / f"fused_scores-{digest}-{arch}.cubin").is_file()


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
@pytest.mark.parametrize("arch", ["sm_75", "sm_87", "sm_90"])
def test_kernel_compiles_with_nvcc(arch, tmp_path):
    out = tmp_path / "k.ptx"
    subprocess.run(["nvcc", "--ptx", f"-arch={arch}", "-o", str(out), str(SOURCE_PATH)], check=True)
    ptx = out.read_bytes()
    for name in KERNELS:
        assert f".entry {name}(".encode() in ptx


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_kernel_compiles_with_nvcc_host_and_device_passes(tmp_path):
    """A full `nvcc -c` also parses the source in its host pass (as a torch extension build would)."""
    out = tmp_path / "k.o"
    subprocess.run(["nvcc", "-c", "-arch=sm_75", "-o", str(out), str(SOURCE_PATH)], check=True)
    assert out.stat().st_size > 0


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@cuda
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 2e-3)])
def test_kernel_matches_registry_on_gpu(dtype, tol):
    emb, logits, head, uem = random_outputs(b=2, d=256, k=19, h=37, w=74, dtype=dtype, device="cuda")
    out = fused_scores(FusedArgs(emb, logits, head, eta=1.5, uem_logits=uem, lam=1.0))
    ref = fused_scores(FusedArgs(emb.cpu().float(), logits.cpu().float(), head.to("cpu"), 1.5, uem.cpu().float(), 1.0))
    torch.testing.assert_close(out.energy.cpu(), ref.energy, rtol=tol, atol=tol)
    torch.testing.assert_close(out.llr.cpu(), ref.llr, rtol=tol, atol=tol)
    agree = (out.class_ids.cpu() == ref.class_ids).float().mean().item()
    assert agree > (0.999 if dtype == torch.float32 else 0.99)


@cuda
@pytest.mark.parametrize("size", [(37, 74), (300, 500), (21, 45)], ids=["equal", "larger", "smaller"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_image_mode_matches_registry_on_gpu(dtype, size):
    emb, logits, head, uem = random_outputs(b=2, d=256, k=19, h=37, w=74, dtype=dtype, device="cuda")
    out = fused_scores(FusedArgs(emb, logits, head, eta=1.5, uem_logits=uem, lam=1.0, out_size=size))
    ref = fused_scores(FusedArgs(emb.cpu(), logits.cpu(), head.to("cpu"), 1.5, uem.cpu(), 1.0, out_size=size))
    assert out.llr.shape == (2, *size)
    for name in ("energy", "llr"):
        got, want = getattr(out, name).cpu().double(), getattr(ref, name).double()
        assert ((got - want).abs() / want.abs().clamp_min(1)).max() <= 1e-5
    agree = (out.class_ids.cpu() == ref.class_ids).float().mean().item()
    assert agree > 0.9999  # FMA contraction on the GPU may break near-ties differently from the CPU
