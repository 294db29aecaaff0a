"""What the node checks before it says it is ready (parameters, thresholds, device, model, warm-up)."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from hypood_ros.calibration import Calibration, read_score_thresholds, write_params
from hypood_ros.errors import ConfigError
from hypood_ros.kernels.compile import KernelCompileError
from hypood_ros.kernels.fused import reference_fused_scores
from hypood_ros.node.stats import FrameStats
from hypood_ros.pipeline import FramePipeline, PipelineConfig
from hypood_ros.runtimes.torch_backend import TorchBackend
from ros_harness import random_domain, ros_env


def test_score_thresholds_file(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("energy: -3\nmsp: -0.5\n")
    assert read_score_thresholds(path) == {"energy": -3.0, "msp": -0.5}
    written = write_params(tmp_path / "calibrated.yaml", Calibration(-7.25, 0.01, 0.0099, 1000, 3),
                           PipelineConfig(score="energy"), source="id.mcap", model="m.pt")
    assert read_score_thresholds(written) == {"energy": -7.25}  # what `hypood calibrate` writes
    for text, message in [("energi: 1\n", "unknown score 'energi'"), ("energy: high\n", "finite number"),
                          ("[1, 2\n", "not valid YAML"), ("- 1\n", "must map")]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            read_score_thresholds(path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_score_thresholds(tmp_path / "missing.yaml")


def test_latency_is_from_receipt_and_stamp_latency_only_when_given():
    stats = FrameStats()
    stats.on_received(False)
    stats.on_published(0.020)
    snap = stats.snapshot()
    assert snap["latency_p50_ms"] == pytest.approx(20.0) and "stamp_latency_p50_ms" not in snap
    stats.on_published(0.030, stamp_latency=0.5)
    snap = stats.snapshot()
    assert snap["stamp_latency_max_ms"] == pytest.approx(500.0) and snap["latency_max_ms"] == pytest.approx(30.0)


class BrokenKernel:
    """Stands in for a GPU whose fused kernel cannot be compiled or loaded (there is no GPU here)."""

    calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        raise KernelCompileError("NVRTC is not available: install cuda-python\nsecond line")


def test_warm_up_falls_back_to_the_reference_when_the_kernel_cannot_load(tiny_model):
    pipeline = FramePipeline(TorchBackend(tiny_model, input_hw=(28, 56)), PipelineConfig(score="msp"))
    assert pipeline.warm_up() is None  # on CPU the fused op is the reference already
    broken = BrokenKernel()
    pipeline._fused = broken
    warning = pipeline.warm_up()
    assert broken.calls == 1 and "\n" not in warning
    assert "fused CUDA kernel unavailable (NVRTC is not available" in warning and "reference" in warning
    assert pipeline._fused is reference_fused_scores
    pipeline.update(score="hyperspherical_llr")
    frame = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    result = pipeline.process(frame)
    expected = FramePipeline(TorchBackend(tiny_model, input_hw=(28, 56)), pipeline.config).process(frame)
    np.testing.assert_array_equal(result.score, expected.score)


def run_node(args, timeout=90):
    proc = subprocess.run([sys.executable, "-m", "hypood_ros.node.hypood_node", "--ros-args", *args],
                          env=ros_env(random_domain()), capture_output=True, text=True, timeout=timeout)
    return proc.returncode, [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]


BAD_STARTS = {
    "params file does not parse": (["--params-file", "{bad_yaml}"], "bad.yaml: while parsing a flow sequence"),
    "params file missing": (["--params-file", "{tmp}/none.yaml"], "none.yaml: [Errno 2] No such file or directory"),
    "params file rcl cannot parse": (["--params-file", "{not_params}"], "cannot start ROS: "),
    "unknown device": (["-p", "device:=gpu"], "unknown device 'gpu'; use cuda"),
    "wrong type": (["-p", "min_area:=big"], "parameter min_area must be int, got 'big'"),
    "out of range": (["-p", "input_height:=100"], "parameter input_height must be in [0, 4032] in steps of 14"),
    "malformed recorded input size": (["-p", "model:={tmp}/badsize.pt"],
                                      "badsize.pt: metadata input_size must be [height, width], two positive "
                                      "multiples of 14 (the patch size), got [28, 50]"),
    "not an allowed value": (["-p", "input_qos:=sometimes"], "parameter input_qos must be one of"),
    "unknown score": (["-p", "score:=energi"], "parameter score must be one of"),
    "unknown region in a params file": (["--params-file", "{bad_roi}"],
                                        "parameter roi must be one of 'none', 'road', 'corridor', 'road_corridor', "
                                        "got 'lane'"),
    "model will not load": (["-p", "model:={tmp}/broken.onnx"], "cannot load ONNX model"),
    "ego mask missing": (["-p", "ego_mask:={tmp}/bonnet.png"], "bonnet.png: cannot read file"),
    "bad thresholds file": (["-p", "score_thresholds:={tmp}/none.yaml"], "cannot read score thresholds"),
}
if not torch.cuda.is_available():
    BAD_STARTS["no GPU"] = (["-p", "device:=cuda"], "no CUDA device is available")


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_STARTS))
def test_start_up_failures_are_one_line(tmp_path, tiny_checkpoint, case):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text('/**:\n  ros__parameters:\n    threshold: [1, "a"\n')
    (tmp_path / "bad_roi.yaml").write_text('/**:\n  ros__parameters:\n    roi: "lane"\n')
    (tmp_path / "not_params.yaml").write_text("- a list\n- not a parameter file\n")  # YAML, but not rcl's layout
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf" * 100)
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["metadata"]["input_size"] = [28, 50]
    torch.save(payload, tmp_path / "badsize.pt")
    args, expected = BAD_STARTS[case]
    args = [a.format(bad_yaml=bad_yaml, bad_roi=tmp_path / 'bad_roi.yaml', not_params=tmp_path / 'not_params.yaml',
                     tmp=tmp_path) for a in args]
    code, lines = run_node(["-p", f"model:={tiny_checkpoint}", *args])
    assert code == 1, lines
    assert len(lines) == 1 and lines[0].startswith("hypood_node: error: ") and expected in lines[0], lines
    assert ", at /" not in lines[0]  # rcl's source locations are left out


def test_parameter_file_sections_are_matched_as_ros_does():
    from hypood_ros.node.params_files import params_files, section_applies, values_for

    applies = {("hypood", "/hypood"), ("/hypood", "/hypood"), ("/**", "/hypood"), ("/**", "/car/hypood"),
               ("**", "/car/hypood"), ("/**/hypood", "/hypood"), ("/**/hypood", "/car/front/hypood"),
               ("/*/hypood", "/car/hypood"), ("/car/hypood", "/car/hypood"), ("/*", "/hypood")}
    other = {("hypood_node", "/hypood"), ("/*/hypood", "/hypood"), ("/car/hypood", "/hypood"),
             ("hypood", "/car/hypood"), ("/*", "/car/hypood"), ("/other/**", "/hypood"), ("/hyp", "/hypood")}
    assert all(section_applies(k, fqn) for k, fqn in applies)
    assert not any(section_applies(k, fqn) for k, fqn in other)
    assert params_files(["node", "--ros-args", "-p", "a:=1", "--params-file", "p.yaml", "--", "--params-file",
                         "x.yaml", "--ros-args", "--params-file", "q.yaml"]) == ["p.yaml", "q.yaml"]
    nested = {"/**": {"ros__parameters": {"a": 1, "b": 1}}, "car": {"hypood": {"ros__parameters": {"b": 2}}},
              "hypood": {"ros__parameters": {"c": 3}}}
    assert values_for(nested, "/car/hypood") == {"a": 1, "b": 2} and values_for(nested) == {"a": 1, "b": 1, "c": 3}


@pytest.mark.ros
def test_a_parameter_file_for_another_node_name_is_reported(tmp_path):
    """`hypood_node:` for the node `hypood`: ROS ignores the whole file silently; the node says so (and then,
    here, stops on a model that will not load: the warning comes first)."""
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf" * 100)
    misnamed, right = tmp_path / "misnamed.yaml", tmp_path / "right.yaml"
    misnamed.write_text("hypood_node:\n  ros__parameters:\n    threshold: 0.5\n")
    right.write_text("/**:\n  ros__parameters:\n    threshold: 0.5\n")
    code, lines = run_node(["-p", f"model:={tmp_path}/broken.onnx", "--params-file", str(misnamed)])
    assert code == 1 and lines[-1].startswith("hypood_node: error: ") and "cannot load ONNX model" in lines[-1], lines
    warned = [line for line in lines if "has no section for this node" in line]
    assert len(warned) == 1 and warned[0].startswith("[WARN]"), lines
    assert f"parameter file {misnamed} has no section for this node (/hypood)" in warned[0]
    assert "its sections: hypood_node (use '/hypood:' or '/**:')" in warned[0]
    code, lines = run_node(["-p", f"model:={tmp_path}/broken.onnx", "--params-file", str(right)])
    assert code == 1 and not any("has no section" in line for line in lines), lines


@pytest.mark.ros
def test_section_matching_agrees_with_rclpy(tmp_path):
    """The sections rclpy itself hands to a node, for names in and out of namespaces, flat and nested."""
    import rclpy

    from hypood_ros.node.params_files import section_applies, values_for

    keys = ["hypood", "/hypood", "/**", "**", "/*", "/**/hypood", "/*/hypood", "/car/hypood", "/car/*", "/car/**",
            "/**/*", "hypood_node", "/other/**"]
    for ns in ("", "/car", "/a/car"):
        fqn = f"{ns}/hypood"
        for i, key in enumerate(keys):
            path = tmp_path / f"p{i}.yaml"
            path.write_text(f"'{key}':\n  ros__parameters:\n    marker: {i}\n")
            context = rclpy.Context()
            rclpy.init(args=["x", "--ros-args", "--params-file", str(path)], context=context)
            try:
                node = rclpy.create_node("hypood", namespace=ns or None, context=context)
                got = "marker" in node._parameter_overrides
                node.destroy_node()
            finally:
                rclpy.try_shutdown(context=context)
            assert section_applies(key, fqn) == got, (key, fqn, got)
    nested = tmp_path / "nested.yaml"
    nested.write_text("car:\n  hypood:\n    ros__parameters:\n      marker: 7\n")
    context = rclpy.Context()
    rclpy.init(args=["x", "--ros-args", "--params-file", str(nested)], context=context)
    try:
        node = rclpy.create_node("hypood", namespace="/car", context=context)
        assert node._parameter_overrides["marker"].value == 7
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
    import yaml

    assert values_for(yaml.safe_load(nested.read_text()), "/car/hypood") == {"marker": 7}
