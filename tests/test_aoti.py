"""AOTInductor packages: built from a checkpoint, equal to eager PyTorch, refused when altered or built
for another machine, cached at launch (reused when current, rebuilt when stale, never left half-written).

One tiny package is compiled per test session (through `hypood build-engine --runtime aoti`) and copied
where a test needs to alter it; compiling is the expensive part.
"""
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hypood_ros.errors import BackendError
from hypood_ros.pipeline import FramePipeline
from hypood_ros.runtimes import load_backend
from hypood_ros.runtimes.aoti_backend import AOTIBackend
from hypood_ros.runtimes.aoti_build import build_aoti
from hypood_ros.runtimes.engine_cache import ensure_engine, stale_reasons
from hypood_ros.runtimes.engine_metadata import (
    EngineMetadata,
    file_sha256,
    read_sidecar,
    running_machine,
    sidecar_path,
    write_sidecar,
)
from hypood_ros.runtimes.torch_backend import TorchBackend

HW = (56, 112)  # the smallest input that still has a 4x4 patch grid for every FPN level


def run_cli(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "hypood_ros.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def built(tmp_path_factory, tiny_checkpoint):
    """(package path, build-engine stderr): the session's one compiled package."""
    out = tmp_path_factory.mktemp("aoti") / "tiny.pt2"
    proc = run_cli("build-engine", "--runtime", "aoti", "--model", tiny_checkpoint, "--height", HW[0],
                   "--width", HW[1], "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stderr


def copy_package(src: Path, dst: Path, **sidecar_changes) -> Path:
    shutil.copyfile(src, dst)
    meta = dataclasses.replace(read_sidecar(src), **sidecar_changes)
    write_sidecar(dst, meta)
    return dst


def refusal(path, device="cpu") -> str:
    with pytest.raises(BackendError) as err:
        load_backend(path, device=device)
    message = str(err.value)
    assert "\n" not in message, message
    return message


# -- the compiled package ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_build_shows_progress_and_writes_package_and_sidecar(built, tiny_checkpoint, tiny_model):
    package, stderr = built
    assert "[1/3] exported" in stderr and "[2/3] compiled with AOTInductor in" in stderr
    assert "[3/3] checked against eager PyTorch" in stderr and "built " in stderr  # under a temporary name
    meta = read_sidecar(package)
    assert meta.kind == "aoti" and meta.torch_version == torch.__version__ and meta.device_type == "cpu"
    assert meta.input_shape == [1, 3, *HW] and meta.input_dtype == "float32" and meta.precision == "fp32"
    assert meta.source_sha256 == file_sha256(tiny_checkpoint) and meta.engine_sha256 == file_sha256(package)
    assert meta.build_seconds > 0 and meta.machine and meta.cpu_isa == running_machine(torch.device("cpu"))["cpu_isa"]
    np.testing.assert_array_equal(meta.head["bias"], tiny_model.head_params().bias.numpy())
    assert load_backend(package).classes == load_backend(tiny_checkpoint, input_hw=HW).classes
    assert sorted(p.name for p in package.parent.iterdir()) == ["tiny.pt2", "tiny.pt2.json"]  # no temporaries


@pytest.mark.slow
def test_package_outputs_equal_eager(built, tiny_model):
    backend = load_backend(built[0])
    assert isinstance(backend, AOTIBackend) and backend.input_shape == (1, 3, *HW)
    x = torch.randn(1, 3, *HW)
    got, want = backend.run(x), TorchBackend(tiny_model, input_hw=HW).run(x)
    for name in ("seg_logits", "embedding", "uem_logits"):
        assert got[name].shape == want[name].shape and got[name].dtype == torch.float32
        assert (got[name] - want[name]).abs().max().item() <= 1e-5, name
    torch.testing.assert_close(backend.head.weight_norm, tiny_model.head_params().weight_norm, rtol=0, atol=0)
    with pytest.raises(BackendError, match="does not match the aoti backend"):
        backend.run(torch.zeros(2, 3, *HW))  # a fixed-batch package


@pytest.mark.slow
def test_frame_pipeline_on_the_package(built, tiny_checkpoint):
    img = np.random.default_rng(0).integers(0, 256, (70, 150, 3), dtype=np.uint8)
    for resolution in ("image", "network"):
        pipelines = [FramePipeline(load_backend(p, input_hw=HW)) for p in (built[0], tiny_checkpoint)]
        for p in pipelines:
            p.update(score_resolution=resolution)
        a, b = (p.process(img) for p in pipelines)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.score, b.score, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(a.mask, b.mask)


# -- refusals ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tampered_package_is_refused(built, tmp_path):
    package = copy_package(built[0], tmp_path / "m.pt2")
    data = bytearray(package.read_bytes())
    data[len(data) // 2] ^= 0x01
    package.write_bytes(bytes(data))
    message = refusal(package)
    assert "does not match its metadata" in message
    assert "hypood build-engine --runtime aoti --model" in message and f"--out {package}" in message


@pytest.mark.slow
def test_sidecar_from_another_torch_version_is_refused(built, tmp_path):
    package = copy_package(built[0], tmp_path / "m.pt2", torch_version="2.4.0")
    message = refusal(package)
    assert f"was built for torch 2.4.0 (this machine: {torch.__version__})" in message
    assert "rebuild it on this machine: hypood build-engine --runtime aoti" in message


@pytest.mark.slow
def test_package_for_another_device_is_refused(built, tmp_path):
    cuda = copy_package(built[0], tmp_path / "cuda.pt2", device_type="cuda", gpu_name="NVIDIA H100 80GB HBM3",
                        compute_capability="9.0", cpu_isa="", precision="fp16", input_dtype="float16")
    message = refusal(cuda)
    assert "built for device cuda (requested here: cpu)" in message and "--device cuda --fp16" in message
    other_cpu = copy_package(built[0], tmp_path / "isa.pt2", cpu_isa="NEON")
    assert "built for CPU instructions NEON" in refusal(other_cpu)
    other_arch = copy_package(built[0], tmp_path / "arch.pt2", machine="aarch64")
    assert "built for aarch64" in refusal(other_arch)
    if not torch.cuda.is_available():
        assert "needs a CUDA device and none is available" in refusal(built[0], device="cuda")


@pytest.mark.slow
def test_missing_or_foreign_sidecar_is_refused(built, tmp_path):
    package = tmp_path / "m.pt2"
    shutil.copyfile(built[0], package)
    assert "sidecar m.pt2.json is missing" in refusal(package)
    copy_package(built[0], package, kind="tensorrt")
    assert "describes a tensorrt engine" in refusal(package)


# -- engine cache -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_current_engine_is_reused_without_a_build(built, tiny_checkpoint, tmp_path, monkeypatch):
    package = copy_package(built[0], tmp_path / "m.pt2")
    before = (package.stat().st_mtime_ns, sidecar_path(package).read_text())
    builds = []
    import hypood_ros.runtimes.engine_cache as cache
    monkeypatch.setattr(cache, "build_aoti", lambda *a, **k: builds.append(a))  # counts; must not be reached
    lines = []
    assert ensure_engine(tiny_checkpoint, package, *HW, log=lines.append) == "reused"
    assert builds == [] and (package.stat().st_mtime_ns, sidecar_path(package).read_text()) == before
    assert lines and lines[0].startswith(f"reusing engine {package}")
    proc = run_cli("run", "--model", tiny_checkpoint, "--engine", package, "--height", HW[0], "--width", HW[1],
                   "--images", write_images(tmp_path / "images"), "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert f"reusing engine {package}" in proc.stderr and "building" not in proc.stderr
    assert package.stat().st_mtime_ns == before[0] and (tmp_path / "out" / "f0_mask.png").is_file()


def write_images(folder: Path) -> Path:
    from hypood_ros.images import write_image

    folder.mkdir()
    write_image(folder / "f0.png", np.random.default_rng(1).integers(0, 256, (60, 90, 3), dtype=np.uint8))
    return folder


@pytest.mark.slow
def test_interrupted_build_leaves_the_previous_package(built, tiny_checkpoint, tmp_path):
    """A dynamic-batch build (1..2), compiled and checked against eager at both batch sizes, then interrupted
    just before it would take the final name: the previous package stays, no temporary file is left."""
    package = copy_package(built[0], tmp_path / "m.pt2", torch_version="2.4.0")
    before = package.read_bytes(), sidecar_path(package).read_text()
    lines = []

    def interrupt_when_checked(line):
        lines.append(line)
        if "[3/3]" in line:  # compiled, verified, still under its temporary name
            assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_aoti(tiny_checkpoint, package, *HW, batch=1, max_batch=2, log=interrupt_when_checked)
    assert "input 1..2x3x56x112" in lines[0] and "checked against eager PyTorch" in lines[-1]
    assert (package.read_bytes(), sidecar_path(package).read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt2", "m.pt2.json"]


@pytest.mark.slow
@pytest.mark.ros
def test_node_rebuilds_a_stale_engine_at_start(built, tiny_checkpoint, tmp_path):
    from ros_harness import NodeProcess, Peer, random_domain

    package = copy_package(built[0], tmp_path / "m.pt2", torch_version="2.4.0")
    domain = random_domain()
    node = NodeProcess(["-p", f"model:={tiny_checkpoint}", "-p", f"engine:={package}", "-p", f"input_height:={HW[0]}",
                        "-p", f"input_width:={HW[1]}"], domain)
    peer = None
    try:
        node.wait_ready(timeout=900)
        log = "\n".join(node.lines)
        assert f"building engine {package}: built for torch 2.4.0" in log and "[2/3] compiled" in log, log
        assert "ready: aoti backend" in log
        peer = Peer(domain)
        peer.wait_connected(peer.raw)
        rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        assert peer.send_and_wait(peer.image(rgb, sec=7))
    finally:
        if peer is not None:
            peer.close()
        node.stop()
    meta = read_sidecar(package)
    assert meta.torch_version == torch.__version__ and meta.engine_sha256 == file_sha256(package)
    assert stale_reasons(package, tiny_checkpoint, *HW) == []


# -- without compiling ----------------------------------------------------------------------------------------
def fake_package(tmp_path, checkpoint, **changes) -> Path:
    """Bytes standing in for a package, with the sidecar a current build would write (never loaded)."""
    package = tmp_path / "fake.pt2"
    package.write_bytes(b"not a real package" * 10)
    machine = running_machine(torch.device("cpu"))
    fields = dict(kind="aoti", input_shape=[1, 3, *HW], precision="fp32", engine_sha256=file_sha256(package),
                  build_date="2026-11-23T00:00:00+00:00", source_file=str(checkpoint),
                  source_sha256=file_sha256(checkpoint), **machine)
    fields.update(changes)
    write_sidecar(package, EngineMetadata(**fields))
    return package


def test_stale_reasons(tmp_path, tiny_checkpoint):
    assert stale_reasons(tmp_path / "none.pt2", tiny_checkpoint, *HW) == ["no package yet"]
    assert stale_reasons(fake_package(tmp_path, tiny_checkpoint), tiny_checkpoint, *HW) == []
    cases = {
        "checkpoint": ({"source_sha256": "0" * 64}, "changed since the build"),
        "torch": ({"torch_version": "2.4.0"}, "built for torch 2.4.0"),
        "device": ({"device_type": "cuda", "gpu_name": "Orin", "compute_capability": "8.7"}, "built for device cuda"),
        "shape": ({"input_shape": [1, 3, 518, 1036]}, "input [1, 3, 518, 1036] (wanted [1, 3, 56, 112])"),
        "batch": ({"batch_range": [1, 4]}, "wanted [1, 3, 56, 112]"),
        "precision": ({"precision": "fp16"}, "precision fp16 (wanted fp32)"),
        "bytes": ({"engine_sha256": "1" * 64}, "package bytes do not match"),
    }
    for name, (changes, reason) in cases.items():
        reasons = stale_reasons(fake_package(tmp_path, tiny_checkpoint, **changes), tiny_checkpoint, *HW)
        assert len(reasons) == 1 and reason in reasons[0], (name, reasons)


def test_engine_cache_refuses_what_it_cannot_build(tmp_path, tiny_checkpoint):
    with pytest.raises(BackendError, match="engine cache builds AOTInductor packages"):
        ensure_engine(tiny_checkpoint, tmp_path / "m.engine", *HW)
    with pytest.raises(BackendError, match="checkpoint not found"):
        ensure_engine(tmp_path / "missing.pt", tmp_path / "m.pt2", *HW)
    assert not list(tmp_path.iterdir())


def test_version_1_tensorrt_sidecar_still_reads(tmp_path):
    engine = tmp_path / "old.engine"
    engine.write_bytes(b"x")
    sidecar_path(engine).write_text(json.dumps({
        "tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7", "input_shape": [1, 3, 518, 1036],
        "precision": "fp16", "onnx_sha256": "ab" * 32, "engine_sha256": "cd" * 32, "build_date": "2026-01-01",
        "head": {}, "onnx_file": "m.onnx", "format": "hypood_ros.engine", "version": 1}))
    meta = read_sidecar(engine)
    assert meta.kind == "tensorrt" and meta.source_file == "m.onnx" and meta.source_sha256 == "ab" * 32
    sidecar_path(engine).write_text(json.dumps({"format": "hypood_ros.engine", "version": 99}))
    with pytest.raises(BackendError, match="newer than this package reads"):
        read_sidecar(engine)


@pytest.mark.parametrize("args, message", [
    (["--model", "missing.pt"], "no such checkpoint file"),
    (["--model", "CKPT", "--int8"], "--int8 is a TensorRT option"),
    (["--model", "CKPT", "--fp16"], "fp16 packages are built for CUDA only"),
    (["--model", "CKPT", "--height", "50"], "must be in [0, 4032] in steps of 14, got 50"),
    (["m.onnx"], "no such checkpoint file"),
    (["--model", "CKPT", "--out", "x.engine"], "the file name must end in .pt2"),
])
def test_build_engine_aoti_refuses_bad_requests_with_one_line(tmp_path, tiny_checkpoint, args, message):
    args = [str(tiny_checkpoint) if a == "CKPT" else str(tmp_path / a) if a.startswith("x.") else a for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "x.pt2")]
    proc = run_cli("build-engine", "--runtime", "aoti", *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_fp16_package_with_and_without_cuda_graphs(tmp_path, tiny_checkpoint, tiny_model):
    package = tmp_path / "cuda.pt2"
    meta = build_aoti(tiny_checkpoint, package, *HW, device="cuda", fp16=True)
    assert meta.device_type == "cuda" and meta.input_dtype == "float16" and meta.gpu_name
    x = torch.randn(1, 3, *HW)
    want = TorchBackend(tiny_model, input_hw=HW).run(x)
    for graphs in (False, True):
        backend = load_backend(package, device="cuda", cuda_graphs=graphs)
        got = backend.run(x.cuda())
        for name in want:
            assert got[name].dtype == torch.float16
            assert (got[name].float().cpu() - want[name]).abs().max().item() <= 5e-2, (graphs, name)
    assert "requested here: cpu" in refusal(package, device="cpu")
