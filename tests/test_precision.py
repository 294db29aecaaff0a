"""Reduced precision on the CPU: int8 ONNX (dynamic, static from images or a bag) with its sidecar, bf16 autocast
in the torch backend, and one-line refusals of what cannot work."""
import json

import numpy as np
import pytest
import torch

from hypood_ros.errors import BackendError, UsageError
from hypood_ros.images import write_image
from hypood_ros.runtimes import load_backend
from hypood_ros.runtimes.engine_metadata import read_sidecar, sidecar_path, write_sidecar
from hypood_ros.runtimes.export import export_onnx
from hypood_ros.runtimes.precision import PRECISION_KEY, bf16_instructions, check_bf16
from hypood_ros.runtimes.quantize import quantize_onnx
from hypood_ros.runtimes.torch_backend import TorchBackend

HW = (56, 112)


def street_frames(count=4, seed=0):
    """Generated street scenes at the test size: in-distribution frames with real structure."""
    from hypood_ros.synthetic import writers

    return [writers.scene(seed + i, (HW[0] * 2, HW[1] * 2)).rgb for i in range(count)]


@pytest.fixture(scope="module")
def frames():
    return street_frames()


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("fp32") / "tiny.onnx"
    export_onnx(tiny_model, path, *HW)
    return path


@pytest.fixture(scope="module")
def int8(tmp_path_factory, fp32_onnx, frames):
    folder = tmp_path_factory.mktemp("int8")
    paths = {"dynamic": folder / "dynamic.onnx", "static": folder / "static.onnx"}
    quantize_onnx(fp32_onnx, paths["dynamic"], "dynamic")
    quantize_onnx(fp32_onnx, paths["static"], "static", lambda: iter(frames), 8, "test frames")
    return paths


def outputs(path, batch):
    with load_backend(path) as backend:
        return backend.precision, backend.run(batch)


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_int8_model_runs_close_to_fp32_and_records_its_precision(int8, fp32_onnx, frames, mode):
    from hypood_ros.preprocess import preprocess

    batch = preprocess(frames[:1], HW, "cpu")
    precision, got = outputs(int8[mode], batch)
    _, want = outputs(fp32_onnx, batch)
    assert precision == f"int8-{mode}"
    for name, value in want.items():
        assert got[name].dtype == torch.float32 and got[name].shape == value.shape
        spread = float(value.max() - value.min())
        assert float((got[name] - value).abs().max()) < 0.25 * spread, name  # close, not equal: int8
    agree = (got["seg_logits"].argmax(1) == want["seg_logits"].argmax(1)).float().mean()
    assert agree > 0.9
    import onnx

    record = json.loads({p.key: p.value for p in onnx.load(str(int8[mode])).metadata_props}[PRECISION_KEY])
    assert record["precision"] == f"int8-{mode}" and record["mode"] == mode
    assert (record.get("calibration_frames") == 4) == (mode == "static")  # 4 frames given, at most 8 asked
    meta = read_sidecar(int8[mode])
    assert meta.kind == "onnxruntime" and meta.precision == f"int8-{mode}"


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_int8_model_holds_int8_weights(int8, mode):
    import onnx

    graph = onnx.load(str(int8[mode])).graph
    weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) >= 2]
    assert len(weights) >= 8  # the ViT's linear layers at least


def _copy(src, dst):
    dst.write_bytes(src.read_bytes())
    sidecar_path(dst).write_text(sidecar_path(src).read_text())
    return dst


def _refused(path, words):
    with pytest.raises(BackendError) as info:
        load_backend(path)
    text = str(info.value)
    assert "\n" not in text and words in text, text
    return text


def test_quantized_model_with_a_mismatched_sidecar_is_refused(int8, tmp_path):
    # another precision in the sidecar than in the file
    path = _copy(int8["dynamic"], tmp_path / "a.onnx")
    meta = read_sidecar(path)
    meta.precision = "int8-static"
    write_sidecar(path, meta)
    assert "hypood export" in _refused(path, "sidecar says int8-static")
    # the sidecar of another file: the bytes differ from the hash it records
    path = _copy(int8["dynamic"], tmp_path / "b.onnx")
    sidecar_path(path).write_text(sidecar_path(int8["static"]).read_text())
    _refused(path, "does not match its metadata")
    # no sidecar at all
    path = _copy(int8["static"], tmp_path / "c.onnx")
    sidecar_path(path).unlink()
    _refused(path, "needs its sidecar")
    # a sidecar of an engine kind
    path = _copy(int8["static"], tmp_path / "d.onnx")
    meta = read_sidecar(path)
    meta.kind = "aoti"
    write_sidecar(path, meta)
    _refused(path, "describes a aoti engine")


def test_fp32_export_without_sidecar_still_loads(fp32_onnx):
    assert not sidecar_path(fp32_onnx).exists()
    with load_backend(fp32_onnx) as backend:
        assert backend.precision == "fp32"


def test_quantize_refuses_what_cannot_work(fp32_onnx, int8, tmp_path):
    with pytest.raises(UsageError, match="static int8 needs calibration frames"):
        quantize_onnx(fp32_onnx, tmp_path / "x.onnx", "static")
    with pytest.raises(UsageError, match="static only"):
        quantize_onnx(fp32_onnx, tmp_path / "x.onnx", "dynamic", lambda: iter([]))
    with pytest.raises(BackendError, match="already quantized"):
        quantize_onnx(int8["dynamic"], tmp_path / "x.onnx", "dynamic")
    with pytest.raises(BackendError, match="no usable calibration frames"):
        quantize_onnx(fp32_onnx, tmp_path / "x.onnx", "static", lambda: iter([]))
    assert not list(tmp_path.iterdir())


# -- bf16 -------------------------------------------------------------------------------------------------
needs_bf16 = pytest.mark.skipif(not bf16_instructions(), reason="this CPU has no bf16 instructions")


@needs_bf16
def test_bf16_torch_backend_gives_float32_outputs_close_to_fp32(tiny_model, frames):
    from hypood_ros.pipeline import FramePipeline
    from hypood_ros.preprocess import preprocess

    batch = preprocess(frames[:2], HW, "cpu")
    fp32 = TorchBackend(tiny_model, HW).run(batch)
    backend = TorchBackend(tiny_model, HW, bf16=True)
    assert backend.precision == "bf16"
    got = backend.run(batch)
    for name, value in fp32.items():
        assert got[name].dtype == torch.float32
        spread = float(value.max() - value.min())
        assert float((got[name] - value).abs().max()) < 0.1 * spread, name
    assert (got["seg_logits"].argmax(1) == fp32["seg_logits"].argmax(1)).float().mean() > 0.9
    result = FramePipeline(backend).process(frames[0])
    assert result.score.dtype == np.float32 and np.isfinite(result.score).all()


def test_bf16_on_a_cpu_without_it_is_one_line():
    plain = {"avx512_bf16": False, "amx_bf16": False, "architecture": "x86_64", "cpu_name": "Old CPU"}
    with pytest.raises(BackendError) as info:
        check_bf16(plain)
    assert "\n" not in str(info.value) and "Old CPU" in str(info.value) and "int8" in str(info.value)
    assert check_bf16({**plain, "avx512_bf16": True}) == "avx512_bf16"
    assert check_bf16({**plain, "amx_bf16": True}) == "amx_bf16"


def test_bf16_backend_refuses_other_devices_and_fp16(tiny_model):
    with pytest.raises(BackendError, match="fp16 and bf16 exclude|only supported on CUDA"):
        TorchBackend(tiny_model, HW, fp16=True, bf16=True)
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="no CUDA device"):
            TorchBackend(tiny_model, HW, device="cuda", bf16=True)


# -- the command line -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def calib_folder(tmp_path_factory, frames):
    folder = tmp_path_factory.mktemp("calib")
    for i, frame in enumerate(frames):
        write_image(folder / f"{i}.png", frame)
    return folder


def _one_line(result, code, words):
    lines = result.stderr.splitlines()
    assert result.code == code, result
    assert len(lines) == 1 and lines[0].startswith("hypood: error: ") and words in lines[0], result.stderr


@pytest.mark.slow
def test_export_int8_static_from_images_then_run_and_calibrate(server, tiny_checkpoint, calib_folder, tmp_path):
    out = tmp_path / "q.onnx"
    size = ["--input-height", str(HW[0]), "--input-width", str(HW[1])]
    result = server.run(["export", "--model", tiny_checkpoint, *size, "--int8", "static", "--calib-images",
                         calib_folder, "--calib-frames", "2", "--out", out], cwd=tmp_path)
    assert result.code == 0, result
    assert "int8 static" in result.stdout and "calibrated on 2 frames" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.onnx", "q.onnx.json"]  # no temporary left
    assert read_sidecar(out).precision == "int8-static"
    # a reduced precision gets its own threshold: calibrate takes the quantized model like any ONNX file
    result = server.run(["calibrate", "--model", out, "--images", calib_folder, "--roi", "none",
                         "--target-fpr", "0.05", "--out", tmp_path / "p.yaml"], cwd=tmp_path)
    assert result.code == 0, result
    assert "threshold" in (tmp_path / "p.yaml").read_text()
    # an fp32 export over it removes the int8 sidecar, which would refuse the new file
    result = server.run(["export", "--model", tiny_checkpoint, *size, "--out", out, "--overwrite"], cwd=tmp_path)
    assert result.code == 0 and not sidecar_path(out).exists(), result
    with load_backend(out) as backend:
        assert backend.precision == "fp32"


@pytest.mark.slow
def test_export_int8_static_from_a_bag(server, tiny_checkpoint, frames, tmp_path):
    pytest.importorskip("rosbags")
    from hypood_ros.bags import BagRecorder, typestore

    store = typestore()
    kind = "sensor_msgs/msg/Image"
    image, header, stamp = store.types[kind], store.types["std_msgs/msg/Header"], \
        store.types["builtin_interfaces/msg/Time"]
    recorder = BagRecorder(tmp_path / "bag")
    for i, frame in enumerate(frames):
        msg = image(header=header(stamp=stamp(sec=i, nanosec=0), frame_id="cam"), height=frame.shape[0],
                    width=frame.shape[1], encoding="rgb8", is_bigendian=0, step=frame.shape[1] * 3,
                    data=np.ascontiguousarray(frame).reshape(-1))
        recorder.write("/cam/image", kind, (i + 1) * 10**9, store.serialize_cdr(msg, kind))
    bag = recorder.close()
    out = tmp_path / "q.onnx"
    result = server.run(["export", "--model", tiny_checkpoint, "--input-height", str(HW[0]), "--input-width",
                         str(HW[1]), "--int8", "static", "--calib-bag", bag, "--calib-topic", "/cam/image",
                         "--out", out], cwd=tmp_path)
    assert result.code == 0, result
    assert f"calibrated on {len(frames)} frames of bag" in result.stdout


@pytest.mark.parametrize("argv, words", [
    (["export", "--model", "{ckpt}", "--int8", "static", "--out", "q.onnx"], "--int8 static needs calibration frames"),
    (["export", "--model", "{ckpt}", "--calib-images", "{calib}", "--out", "q.onnx"], "applies to --int8 static only"),
    (["export", "--model", "{ckpt}", "--int8", "dynamic", "--calib-images", "{calib}", "--out", "q.onnx"],
     "applies to --int8 static only"),
    (["export", "--model", "{ckpt}", "--int8", "dynamic", "--fp16", "--out", "q.onnx"], "exclude each other"),
    (["export", "--model", "{ckpt}", "--int8", "static", "--calib-bag", "{calib}", "--out", "q.onnx"],
     "--calib-bag needs --calib-topic"),
    (["export", "--model", "{ckpt}", "--int8", "fast", "--out", "q.onnx"], "invalid choice"),
    (["run", "--model", "{onnx}", "--bf16", "--images", "{calib}", "--out", "o"], "--bf16 applies to checkpoints"),
    (["run", "--model", "{ckpt}", "--bf16", "--fp16", "--images", "{calib}", "--out", "o"], "--fp16"),
])
def test_bad_combinations_give_one_line(server, tiny_checkpoint, calib_folder, fp32_onnx, tmp_path, argv, words):
    argv = [a.replace("{ckpt}", str(tiny_checkpoint)).replace("{calib}", str(calib_folder))
            .replace("{onnx}", str(fp32_onnx)) for a in argv]
    result = server.run(argv, cwd=tmp_path)
    _one_line(result, 2, words)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.ros
def test_node_reports_the_precision_in_use(int8):
    """The node names the precision in its ready line and in /diagnostics, and runs frames with the int8 model."""
    pytest.importorskip("rclpy")
    from test_node import camera_frame, running_node

    with running_node(["-p", f"model:={int8['dynamic']}", "-p", "diagnostics_period:=0.2"]) as (node, peer):
        assert "onnxruntime backend (int8-dynamic)" in node.ready_line, node.lines
        values = peer.wait_diagnostics(lambda d: "precision" in d)
        assert values["precision"] == "int8-dynamic"
        got = peer.send_and_wait(peer.image(camera_frame(seed=3), sec=801), topics=["ood/mask"])
        assert got["ood/mask"].height == 120


@needs_bf16
def test_run_with_bf16(server, tiny_checkpoint, calib_folder, tmp_path):
    result = server.run(["run", "--model", tiny_checkpoint, "--input-height", str(HW[0]), "--input-width", str(HW[1]),
                         "--bf16", "--images", calib_folder, "--out", tmp_path / "out"], cwd=tmp_path)
    assert result.code == 0, result
    assert len(list((tmp_path / "out").glob("*mask*"))) == 4
