"""Backends behind one interface: ONNX export + ONNX Runtime vs PyTorch, engine sidecars, clear errors."""
import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from hypood_ros.errors import BackendError
from hypood_ros.model import build_segmentor
from hypood_ros.pipeline import FramePipeline
from hypood_ros.runtimes import load_backend
from hypood_ros.runtimes.engine_metadata import (
    EngineMetadata,
    check_compatible,
    check_engine_file,
    file_sha256,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from hypood_ros.runtimes.export import export_onnx
from hypood_ros.runtimes.onnxruntime_backend import OnnxRuntimeBackend
from hypood_ros.runtimes.torch_backend import TorchBackend


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    report = export_onnx(tiny_model, path, 56, 112)
    assert report.ok
    return path


@pytest.mark.parametrize("preset,hw", [("tiny", (56, 112)), ("vits14", (112, 224))])
def test_onnxruntime_matches_pytorch(tmp_path, preset, hw):
    torch.manual_seed(0)
    model = build_segmentor(preset).eval()
    path = export_onnx(model, tmp_path / f"{preset}.onnx", *hw).path
    ort_backend = load_backend(path)
    assert isinstance(ort_backend, OnnxRuntimeBackend) and ort_backend.input_shape == (1, 3, *hw)
    torch_backend = TorchBackend(model, input_hw=hw)
    x = torch.randn(1, 3, *hw)
    got, want = ort_backend.run(x), torch_backend.run(x)
    for name in ("seg_logits", "embedding", "uem_logits"):
        assert got[name].shape == want[name].shape
        assert (got[name] - want[name]).abs().max().item() <= 1e-4, name
    torch.testing.assert_close(ort_backend.head.weight_norm, torch_backend.head.weight_norm)
    torch.testing.assert_close(ort_backend.head.bias, torch_backend.head.bias)


def test_pipeline_runs_on_onnxruntime(tiny_onnx, tiny_checkpoint):
    img = np.random.default_rng(0).integers(0, 256, (70, 150, 3), dtype=np.uint8)
    a = FramePipeline(load_backend(tiny_onnx)).process(img)
    b = FramePipeline(load_backend(tiny_checkpoint, input_hw=(56, 112))).process(img)
    np.testing.assert_allclose(a.score, b.score, atol=1e-4)
    assert (a.labels != b.labels).mean() < 0.01


def test_wrong_input_size_is_refused(tiny_onnx):
    with pytest.raises(BackendError, match=r"does not match the onnxruntime backend's \(1, 3, 56, 112\)"):
        load_backend(tiny_onnx).run(torch.zeros(1, 3, 56, 126))
    with pytest.raises(BackendError, match="multiples of 14"):
        TorchBackend(build_segmentor("tiny"), input_hw=(50, 100))


def test_corrupt_and_truncated_onnx(tmp_path, tiny_onnx):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(tiny_onnx.read_bytes()[:2000])
    with pytest.raises(BackendError, match="cannot load ONNX model"):
        load_backend(truncated)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x01garbage" * 10)
    with pytest.raises(BackendError):
        load_backend(garbage)
    with pytest.raises(BackendError, match="not found"):
        load_backend(tmp_path / "missing.onnx")
    with pytest.raises(BackendError, match="extension"):
        load_backend(tmp_path / "model.bin")


def make_engine(tmp_path, **overrides):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"serialized-engine-bytes" * 100)
    fields = dict(tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7", input_shape=[1, 3, 518, 1036],
                  precision="fp16", source_sha256="0" * 64, engine_sha256=file_sha256(engine),
                  build_date="2026-11-22T00:00:00+00:00", head={"weight_norm": [1.0], "bias": [0.0]},
                  source_file="engines/model.onnx")
    fields.update(overrides)
    write_sidecar(engine, EngineMetadata(**fields))
    return engine


def test_sidecar_roundtrip_and_matching_machine(tmp_path):
    engine = make_engine(tmp_path)
    meta = read_sidecar(engine)
    assert meta.gpu_name == "Orin" and meta.input_shape == [1, 3, 518, 1036]
    check_engine_file(engine, meta)
    check_compatible(engine, meta, "10.3.0", "Orin", "8.7")  # same machine: accepted


def test_sidecar_from_another_gpu_or_tensorrt_is_refused(tmp_path):
    engine = make_engine(tmp_path)
    meta = read_sidecar(engine)
    with pytest.raises(BackendError) as err:
        check_compatible(engine, meta, "10.3.0", "NVIDIA H100 80GB HBM3", "9.0")
    message = str(err.value)
    assert "built for GPU Orin sm_87" in message and "H100" in message
    assert "hypood build-engine --model engines/model.onnx --fp16 --out" in message and "\n" not in message
    with pytest.raises(BackendError, match=r"TensorRT 10.3.0 \(this machine: 10.5.0\)"):
        check_compatible(engine, meta, "10.5.0", "Orin", "8.7")


def test_truncated_engine_and_missing_sidecar(tmp_path):
    engine = make_engine(tmp_path)
    engine.write_bytes(engine.read_bytes()[:100])
    with pytest.raises(BackendError, match="does not match its metadata"):
        load_backend(engine)
    sidecar_path(engine).unlink()
    with pytest.raises(BackendError, match="sidecar model.engine.json is missing"):
        load_backend(engine)
    sidecar_path(engine).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(BackendError, match="unreadable engine metadata"):
        load_backend(engine)


def test_engine_without_tensorrt_says_so(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(BackendError, match="TensorRT is not installed"):
        load_backend(make_engine(tmp_path))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "hypood_ros.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_export_cli_end_to_end(tmp_path, tiny_checkpoint):
    proc = run_cli("export", "--model", tiny_checkpoint, "--height", 42, "--width", 84, "--out", tmp_path / "m.onnx")
    assert proc.returncode == 0, proc.stderr
    assert "max-abs" in proc.stdout
    assert load_backend(tmp_path / "m.onnx").input_shape == (1, 3, 42, 84)
    import onnx
    onnx.checker.check_model(str(tmp_path / "m.onnx"))


@pytest.mark.slow
def test_cli_errors_are_one_line(tmp_path, tiny_checkpoint):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(tiny_checkpoint.read_bytes()[:3000])
    for code, args in ((1, ["export", "--model", corrupt, "--out", tmp_path / "x.onnx"]),
                       (2, ["export", "--model", tiny_checkpoint, "--height", 50, "--out", tmp_path / "x.onnx"]),
                       (2, ["build-engine", tmp_path / "missing.onnx", "--out", tmp_path / "x.engine"])):
        proc = run_cli(*args)
        assert proc.returncode == code, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_cuda_fp16_and_graphs_match_cpu(tiny_model):
    x = torch.randn(1, 3, 56, 112)
    want = TorchBackend(tiny_model, input_hw=(56, 112)).run(x)
    for kwargs, tol in (({}, 1e-4), ({"fp16": True}, 5e-2), ({"cuda_graphs": True}, 1e-4)):
        backend = TorchBackend(copy.deepcopy(tiny_model), input_hw=(56, 112), device="cuda", **kwargs)
        got = backend.run(x.cuda())
        for name in want:
            assert (got[name].float().cpu() - want[name]).abs().max().item() <= tol, (kwargs, name)


def test_cuda_graphs_need_cuda(tiny_model):
    with pytest.raises(BackendError, match="cuda_graphs needs a CUDA device"):
        TorchBackend(copy.deepcopy(tiny_model), input_hw=(56, 112), cuda_graphs=True)
