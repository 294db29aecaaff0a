"""The pieces under the command line: device names, engine sidecars, head JSON, outputs, extras, exit codes."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch

from hypood_ros.cli.extras import COMMAND_EXTRAS, EXTRAS, extra_for, missing_message
from hypood_ros.cli.paths import Output
from hypood_ros.devices import check_device, parse_device
from hypood_ros.errors import (
    BackendError,
    CheckpointError,
    ConfigError,
    FrameError,
    HypoodError,
    MissingDependencyError,
    UsageError,
    exit_code,
)
from hypood_ros.head import HeadParams, head_from_dict, head_from_json, head_to_json
from hypood_ros.runtimes.engine_metadata import read_sidecar

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text,name", [("cpu", "cpu"), ("CPU", "cpu"), ("cuda", "cuda"), ("cuda:0", "cuda:0"),
                                       (" cuda:12 ", "cuda:12")])
def test_device_names_accepted(text, name):
    assert parse_device(text) == name


@pytest.mark.parametrize("text,hint", [("gpu", "use cuda"), ("GPU", "use cuda"), ("gpu0", "use cuda:0"),
                                       ("gpu:1", "use cuda:1"), ("cuda0", "use cuda:0"), ("cuda:", None),
                                       ("cuda:-1", None), ("tpu", None), ("", None), ("cuda:0,1", None)])
def test_device_names_refused_with_a_hint(text, hint):
    with pytest.raises(ConfigError, match="devices are cpu, cuda or cuda:N") as info:
        parse_device(text)
    if hint:
        assert hint in str(info.value)


def test_check_device_knows_this_machine():
    assert check_device("cpu") == "cpu"
    if torch.cuda.is_available():
        assert check_device("cuda") == "cuda"
        with pytest.raises(BackendError, match="CUDA device"):
            check_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(BackendError, match="no CUDA device is available"):
            check_device("cuda:0")


def test_exit_codes():
    assert exit_code(UsageError("x")) == 2 and exit_code(ConfigError("x")) == 2
    for kind in (HypoodError, CheckpointError, BackendError, FrameError, MissingDependencyError):
        assert exit_code(kind("x")) == 1


def test_missing_engine_is_reported_before_its_sidecar(tmp_path):
    (tmp_path / "m.engine.json").write_text("{}")
    with pytest.raises(BackendError, match="engine not found"):
        read_sidecar(tmp_path / "m.engine")
    (tmp_path / "m.engine").write_bytes(b"x")
    (tmp_path / "m.engine.json").unlink()
    with pytest.raises(BackendError, match="sidecar m.engine.json is missing"):
        read_sidecar(tmp_path / "m.engine")


@pytest.mark.parametrize("text,words", [("[1, 2]", "the JSON is a list, not an object"), ("3", "is a int"),
                                        ('"x"', "is a str"), ("{", "unreadable engine metadata"),
                                        ('{"format": "other"}', "not a hypood_ros engine sidecar")])
def test_sidecar_that_is_not_an_object(tmp_path, text, words):
    (tmp_path / "m.engine").write_bytes(b"x")
    (tmp_path / "m.engine.json").write_text(text)
    with pytest.raises(BackendError, match="unreadable engine metadata") as info:
        read_sidecar(tmp_path / "m.engine")
    assert words in str(info.value) and "hypood build-engine" in str(info.value)


def test_head_json_round_trip_and_refusals():
    head = HeadParams(torch.tensor([1.0, 2.0]), torch.tensor([0.5, -0.5]))
    back = head_from_json(head_to_json(head), "m.onnx")
    assert torch.equal(back.weight_norm, head.weight_norm) and torch.equal(back.bias, head.bias)
    for bad in ("[]", "{", '{"weight_norm": [1]}', '{"weight_norm": [1, 2], "bias": [1]}',
                '{"weight_norm": [], "bias": []}', '{"weight_norm": "ab", "bias": "cd"}'):
        with pytest.raises(BackendError, match="m.onnx: invalid head metadata"):
            head_from_json(bad, "m.onnx")
    with pytest.raises(BackendError, match="expected an object"):
        head_from_dict([1, 2], "m.engine.json")


def test_output_file_appears_only_on_success(tmp_path):
    target = tmp_path / "a" / "b" / "m.onnx"
    with Output(target, suffixes=(".onnx",), companions=(".json",)) as tmp:
        assert tmp.parent == target.parent and tmp.exists() and not target.exists()
        tmp.write_text("model")
        Path(str(tmp) + ".json").write_text("{}")
    assert target.read_text() == "model" and Path(str(target) + ".json").read_text() == "{}"
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.onnx", "m.onnx.json"]


def test_output_failure_removes_temporaries_and_new_folders(tmp_path):
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError):
        with Output(tmp_path / "kept" / "new" / "deeper" / "m.onnx", suffixes=(".onnx",)) as tmp:
            tmp.write_text("half")
            Path(str(tmp) + ".tmp").write_text("a writer's own temporary")
            raise RuntimeError("failed half way")
    assert list((tmp_path / "kept").iterdir()) == []  # only what existed before remains


def test_output_folder_replaces_an_empty_folder_only(tmp_path):
    (tmp_path / "out").mkdir()
    with Output(tmp_path / "out", kind="folder") as tmp:
        (tmp / "x.png").write_text("x")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x.png"]
    with pytest.raises(UsageError, match="not empty"):
        Output(tmp_path / "out", kind="folder")
    with pytest.raises(UsageError, match="needs a path"):
        Output("", kind="folder")


def test_outputs_get_the_usual_permissions(tmp_path):
    """Written under a private temporary name (mkstemp: 0600), but with the modes a plain open() or mkdir()
    would give under the process's umask."""
    from hypood_ros.cli import paths

    with Output(tmp_path / "m.onnx", suffixes=(".onnx",)) as tmp:
        tmp.write_text("model")
    with Output(tmp_path / "run", kind="folder") as tmp:
        (tmp / "x.png").write_text("x")
    (tmp_path / "plain").write_text("x")
    (tmp_path / "plain_dir").mkdir()
    assert (tmp_path / "m.onnx").stat().st_mode & 0o777 == 0o666 & ~paths._UMASK
    assert (tmp_path / "m.onnx").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777
    assert (tmp_path / "run").stat().st_mode & 0o777 == (tmp_path / "plain_dir").stat().st_mode & 0o777


def test_a_model_of_another_runtime_is_named_where_a_checkpoint_is_read(tmp_path):
    from hypood_ros.errors import CheckpointError
    from hypood_ros.model.checkpoint import read_torch_file

    for name, words in (("m.onnx", "is an ONNX model (use the onnxruntime backend"),
                        ("m.engine", "is a TensorRT engine"), ("m.pt2", "is an AOTInductor package")):
        (tmp_path / name).write_bytes(b"\x08\x07" * 50)
        with pytest.raises(CheckpointError, match=r"\(\.pt\); PyTorch reads checkpoints only") as err:
            read_torch_file(tmp_path / name)
        assert words in str(err.value) and "corrupt" not in str(err.value)


def test_eval_help_describes_every_layout():
    from hypood_ros.evaluation.datasets import LAYOUTS, READERS

    assert set(LAYOUTS) == set(READERS)


def test_overwrite_replaces_a_file(tmp_path):
    (tmp_path / "p.yaml").write_text("old")
    with pytest.raises(UsageError, match="already exists"):
        Output(tmp_path / "p.yaml")
    with Output(tmp_path / "p.yaml", overwrite=True) as tmp:
        tmp.write_text("new")
    assert (tmp_path / "p.yaml").read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_setup_py_extras_are_the_cli_table():
    """setup.py reads EXTRAS from hypood_ros/cli/extras.py: one table for the install and the messages."""
    tree = ast.parse((REPO / "setup.py").read_text())
    keywords = {k.arg: k.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                for k in node.keywords if getattr(node.func, "id", "") == "setup"}
    assert isinstance(keywords["extras_require"], ast.Name) and keywords["extras_require"].id == "EXTRAS"
    assert "cli" in (REPO / "setup.py").read_text() and "extras.py" in (REPO / "setup.py").read_text()
    assert set(COMMAND_EXTRAS.values()) <= set(EXTRAS)
    assert "matplotlib" in EXTRAS["eval"] and "rosbags" in EXTRAS["replay"] and "onnx" in EXTRAS["onnx"]
    assert all(p in EXTRAS["all"] for pkgs in EXTRAS.values() for p in pkgs)


def test_every_import_of_an_optional_package_is_in_an_extra():
    """Each third-party module the package imports is base (numpy, yaml), from ROS/TensorRT, or in an extra."""
    from hypood_ros.cli.extras import SYSTEM_MODULES, extra_modules

    provided = {m for name in EXTRAS for m in extra_modules(name)} | {"numpy", "yaml"} | set(SYSTEM_MODULES)
    ros = {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "rcl_interfaces", "builtin_interfaces",
           "cv_bridge", "geometry_msgs", "nav_msgs", "visualization_msgs", "tf2_ros", "launch", "launch_ros",
           "ament_index_python", "lifecycle_msgs", "rosidl_runtime_py"}
    import sys

    stdlib = set(sys.stdlib_module_names)
    optional_here = {"tensorboard", "torch_tensorrt"}  # imported where present, never required
    for path in (REPO / "hypood_ros").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top in stdlib or top == "hypood_ros" or top in ros or top.endswith("_msgs") or top in optional_here:
                    continue
                assert top in provided, (path.name, top)


def test_missing_module_messages_name_the_extra():
    assert missing_message("matplotlib", "eval") == ("hypood eval needs matplotlib, which is not installed: "
                                                     "pip install 'hypood_ros[eval]'")
    assert extra_for("torch", "eval") == "eval" and extra_for("torch", "run") == "ml"
    assert extra_for("rosbags", "calibrate") == "bags" and extra_for("onnxruntime", "run") == "onnx"
    assert "source /opt/ros" in missing_message("rclpy", "replay")
    assert missing_message("some_typo_module", "run") is None  # a bug, not a missing extra: traceback kept


def test_requirements_pin_ruff_and_list_every_extra_package():
    pins = {line.split("==")[0].lower() for line in (REPO / "requirements.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    assert "ruff" in pins
    for package in EXTRAS["all"]:
        name = package.split(">")[0].split("=")[0].lower()
        assert name in pins, name


def test_ci_runs_ruff_and_the_tests():
    text = (REPO / ".ci" / "run").read_text()
    assert "ruff check" in text and "make test" in text
    assert os.access(REPO / ".ci" / "run", os.X_OK)


def test_read_only_frames_are_preprocessed_without_a_warning():
    """Frames that view a message's bytes are read-only; torch must not be handed them (it warns)."""
    import warnings

    import numpy as np

    from hypood_ros.preprocess import preprocess

    frame = np.frombuffer(bytes(range(256)) * 10, np.uint8)[: 28 * 28 * 3].reshape(28, 28, 3)
    assert not frame.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = preprocess([frame], (14, 14), "cpu")
    assert out.shape == (1, 3, 14, 14) and torch.isfinite(out).all()


def test_one_pixel_limit_for_files_and_raw_frames():
    """set_max_pixels moves the limit of every reader at once: encoded files and raw message fields."""
    import cv2
    import numpy as np

    from hypood_ros.conversion import image_to_rgb
    from hypood_ros.images import MAX_PIXELS, decode_image, max_pixels, set_max_pixels

    png = cv2.imencode(".png", np.zeros((20, 30, 3), np.uint8))[1].tobytes()
    raw = bytes(20 * 30 * 3)
    assert max_pixels() == MAX_PIXELS
    try:
        set_max_pixels(599)
        with pytest.raises(FrameError, match="above the pixel limit of 599"):
            decode_image(png)
        with pytest.raises(FrameError, match="above the pixel limit of 599"):
            image_to_rgb(20, 30, "rgb8", 90, raw)
        set_max_pixels(600)
        assert decode_image(png).shape == (20, 30, 3) and image_to_rgb(20, 30, "rgb8", 90, raw).shape == (20, 30, 3)
        with pytest.raises(ValueError):
            set_max_pixels(0)
    finally:
        set_max_pixels(MAX_PIXELS)


def test_top_level_help_imports_no_optional_package():
    """`hypood --help` builds the command list without torch, OpenCV or any other extra (fast check;
    test_base_install.py proves it in a fresh environment)."""
    import subprocess
    import sys

    code = ("import sys\nfrom hypood_ros.cli import build_parser\nbuild_parser(['--help']).format_help()\n"
            "loaded = {'torch', 'cv2', 'tqdm', 'onnx', 'onnxruntime', 'matplotlib', 'rosbags'} & set(sys.modules)\n"
            "assert not loaded, loaded\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
