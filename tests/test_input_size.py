"""The network input size a checkpoint records (metadata input_size) and the one rule everything runs it by.

Checkpoints here are the tiny preset, saved in the test: one recording 28x56, one recording nothing (as every
checkpoint written before the field existed). What the commands ran at is read from what they write: the
params file of `hypood calibrate`, the protocol in `hypood eval`'s results.json, the ONNX graph of `hypood
export`, and for `hypood run` its score maps against those of an explicit size.
"""
from __future__ import annotations

import json
import zipfile

import cv2
import numpy as np
import pytest
import torch
import yaml

from hypood_ros.errors import CheckpointError
from hypood_ros.model import load_checkpoint, save_checkpoint
from hypood_ros.model.checkpoint import read_torch_file, recorded_input_size, write_input_size
from hypood_ros.runtimes import DEFAULT_INPUT_HW, resolve_input_size

RECORDED = (28, 56)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("models")
    save_checkpoint(tiny_model, folder / "recorded.pt", metadata={"input_size": list(RECORDED)})
    save_checkpoint(tiny_model, folder / "old.pt")
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        cv2.imwrite(str(folder / f"{name}.png"), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    return folder


def notes(result):
    return [line for line in result.stderr.splitlines() if line.startswith("note: ")]


# ---- the checkpoint field ----

def test_checkpoint_records_its_input_size_and_keeps_it_when_saved_again(models, tmp_path):
    model = load_checkpoint(models / "recorded.pt")
    assert model.input_size == RECORDED and model.metadata["input_size"] == list(RECORDED)
    assert recorded_input_size(models / "recorded.pt") == RECORDED
    assert load_checkpoint(models / "old.pt").input_size is None and recorded_input_size(models / "old.pt") is None
    save_checkpoint(model, tmp_path / "again.pt")  # the loaded model's own size, as its classes
    assert recorded_input_size(tmp_path / "again.pt") == RECORDED
    save_checkpoint(model, tmp_path / "other.pt", metadata={"input_size": [42, 84]})  # metadata wins
    assert recorded_input_size(tmp_path / "other.pt") == (42, 84)


@pytest.mark.parametrize("bad", [[30, 56], [28], [28, 56, 3], "28x56", [28.0, 56], [0, 56], [-28, 56], [True, 56]])
def test_malformed_input_size_is_refused_in_one_line(models, tmp_path, tiny_model, bad):
    with pytest.raises(CheckpointError, match="metadata input_size must be"):
        save_checkpoint(tiny_model, tmp_path / "bad.pt", metadata={"input_size": bad})
    assert not (tmp_path / "bad.pt").exists()
    payload = torch.load(models / "recorded.pt", weights_only=True)
    payload["metadata"]["input_size"] = bad
    torch.save(payload, tmp_path / "bad.pt")
    for read in (load_checkpoint, recorded_input_size, resolve_input_size):
        with pytest.raises(CheckpointError) as caught:
            read(tmp_path / "bad.pt")
        assert str(caught.value) == (f"{tmp_path / 'bad.pt'}: metadata input_size must be [height, width], two "
                                     f"positive multiples of 14 (the patch size), got {bad!r}")


def test_write_input_size_changes_the_metadata_only(models, tmp_path):
    out = write_input_size(models / "old.pt", tmp_path / "stamped.pt", (42, 84))
    before, after = read_torch_file(models / "old.pt"), read_torch_file(out)
    assert after["metadata"].pop("input_size") == [42, 84]
    assert after["metadata"] == before["metadata"] and after["config"] == before["config"]
    assert before["state_dict"].keys() == after["state_dict"].keys()
    for key, value in before["state_dict"].items():
        assert value.dtype == after["state_dict"][key].dtype and torch.equal(value, after["state_dict"][key]), key
    with zipfile.ZipFile(models / "old.pt") as a, zipfile.ZipFile(out) as b:
        storages = [{n.split("/", 1)[1]: z.read(n) for n in z.namelist() if "/data/" in n} for z in (a, b)]
    assert storages[0] and storages[0] == storages[1]  # the tensors' bytes in the file, unchanged
    with pytest.raises(CheckpointError, match="metadata input_size must be"):
        write_input_size(models / "old.pt", tmp_path / "odd.pt", (40, 84))
    assert not (tmp_path / "odd.pt").exists()


def test_the_shipped_demo_model_records_the_size_it_was_calibrated_at():
    from hypood_ros.apps.demo import MODEL_DIR

    metrics = json.loads((MODEL_DIR / "metrics.json").read_text())
    params = yaml.safe_load((MODEL_DIR / "params.yaml").read_text())["/**"]["ros__parameters"]
    assert load_checkpoint(MODEL_DIR / "model.pt").input_size == tuple(metrics["input_size"]) == (280, 560)
    assert (params["input_height"], params["input_width"]) == (280, 560)


# ---- the rule ----

RULE = {  # (checkpoint, asked height, asked width) -> (size, source, words of the note or None)
    "recorded": ("recorded.pt", 0, 0, RECORDED, "recorded in the model", None),
    "recorded, same asked": ("recorded.pt", 28, 56, RECORDED, "asked", None),
    "recorded, other asked": ("recorded.pt", 42, 84, (42, 84), "asked",
                              "recorded.pt was trained at 28x56; running at 42x84 as asked"),
    "recorded, one side asked": ("recorded.pt", 42, 0, (42, 56), "height asked, width recorded in the model",
                                 "recorded.pt was trained at 28x56; running at 42x56 as asked"),
    "old": ("old.pt", 0, 0, DEFAULT_INPUT_HW, "default",
            "old.pt does not record the input size it was trained at; running at 518x1036 (default)"),
    "old, asked": ("old.pt", 42, 84, (42, 84), "asked", None),
}


@pytest.mark.parametrize("case", sorted(RULE))
def test_resolution_rule(models, case):
    name, height, width, hw, source, words = RULE[case]
    size = resolve_input_size(models / name, height, width)
    assert (size.hw, size.source) == (hw, source)
    if words is None:
        assert size.note is None
    else:
        assert size.note == f"{models}/{words}"
    # an AOTInductor package built from the checkpoint at start follows the same rule
    assert resolve_input_size(models / name, height, width, engine="m.pt2") == size


def test_a_model_with_a_fixed_input_is_not_read(tmp_path):
    """ONNX files and engines carry their input shape: the rule does not open them (these files do not exist)."""
    for path, backend in ((tmp_path / "m.onnx", None), (tmp_path / "m.engine", None), (tmp_path / "m.pt", "aoti")):
        size = resolve_input_size(path, 42, 0, backend=backend)
        assert size.hw == (42, DEFAULT_INPUT_HW[1]) and size.source == "fixed in the model file" and size.note is None


# ---- the commands ----

def test_calibrate_runs_at_the_recorded_size(models, images, server, tmp_path):
    result = server.run(["calibrate", "--model", models / "recorded.pt", "--images", images, "--roi", "none", "--out",
                         tmp_path / "p.yaml"], cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert notes(result) == []
    params = yaml.safe_load((tmp_path / "p.yaml").read_text())["/**"]["ros__parameters"]
    assert (params["input_height"], params["input_width"]) == RECORDED


def test_an_old_checkpoint_runs_at_the_old_default_with_a_note(models, images, server, tmp_path):
    result = server.run(["calibrate", "--model", models / "old.pt", "--images", images, "--roi", "none", "--out",
                         tmp_path / "p.yaml"],
                        cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert notes(result) == [f"note: {models / 'old.pt'} does not record the input size it was trained at; "
                             "running at 518x1036 (default)"]
    params = yaml.safe_load((tmp_path / "p.yaml").read_text())["/**"]["ros__parameters"]
    assert (params["input_height"], params["input_width"]) == DEFAULT_INPUT_HW


def test_run_uses_the_recorded_size_and_an_asked_one_with_a_note(models, images, server, tmp_path):
    def run(model, *size):
        out = tmp_path / f"{model}{''.join(size)}"
        result = server.run(["run", "--model", models / model, "--images", images, *size, "--out", out], cwd=tmp_path)
        assert result.code == 0, result.stderr
        return result, np.load(out / "a_score.npy")

    recorded, score = run("recorded.pt")
    asked, same = run("old.pt", "--input-height", "28", "--input-width", "56")
    other, different = run("recorded.pt", "--input-height", "42", "--input-width", "56")
    assert notes(recorded) == notes(asked) == []
    np.testing.assert_array_equal(score, same)  # the recorded size is 28x56 exactly
    assert score.shape == different.shape and not np.array_equal(score, different)
    assert notes(other) == [f"note: {models / 'recorded.pt'} was trained at 28x56; running at 42x56 as asked"]


def smiyc(root, n=2):
    base = root / "dataset_AnomalyTrack"
    (base / "images").mkdir(parents=True)
    (base / "labels_masks").mkdir()
    rng = np.random.default_rng(5)
    for i in range(n):
        cv2.imwrite(str(base / "images" / f"validation{i:04d}.jpg"), rng.integers(0, 255, (42, 56, 3), np.uint8))
        label = np.zeros((42, 56), np.uint8)
        label[10:20, 20:35] = 1
        cv2.imwrite(str(base / "labels_masks" / f"validation{i:04d}_labels_semantic.png"), label)
    return root


def evaluate(server, tmp_path, name, *args):
    result = server.run(["eval", "--dataset", "smiyc-anomaly", "--data-root", tmp_path / "data", "--scores",
                         "msp,energy", "--heatmaps", "0", *args, "--out", tmp_path / name], cwd=tmp_path)
    assert result.code == 0, result.stderr
    return result, json.loads((tmp_path / name / "results.json").read_text())["meta"]


def test_eval_uses_the_recorded_size(models, server, tmp_path):
    smiyc(tmp_path / "data")
    result, meta = evaluate(server, tmp_path, "recorded", "--model", models / "recorded.pt")
    assert meta["protocol"]["input"] == list(RECORDED) and notes(result) == []
    result, meta = evaluate(server, tmp_path, "asked", "--model", models / "recorded.pt", "--input-height", "42")
    assert meta["protocol"]["input"] == [42, 56]
    assert notes(result) == [f"note: {models / 'recorded.pt'} was trained at 28x56; running at 42x56 as asked"]


def test_eval_takes_a_node_params_file_and_the_command_line_wins(models, server, tmp_path):
    smiyc(tmp_path / "data")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "/**": {"ros__parameters": {"eta": 0.5, "lam": 2.0, "score": "msp", "threshold": 0.1, "thresold": 0.1}},
        "hypood": {"ros__parameters": {"score_resolution": "network", "input_height": 28, "input_width": 56}},
        "other_node": {"ros__parameters": {"delta": 0.5, "input_height": 70}},  # not the node's: not read
    }))
    result, meta = evaluate(server, tmp_path, "file", "--model", models / "old.pt", "--params-file", params)
    assert meta["params"] == {"eta": 0.5, "lam": 2.0, "delta": 0.0}
    assert meta["protocol"]["input"] == list(RECORDED) and meta["protocol"]["score_resolution"] == "network"
    assert notes(result) == [f"note: --params-file {params}: ignored names that are not node parameters: "
                             "thresold (did you mean threshold?)"]
    result, meta = evaluate(server, tmp_path, "options", "--model", models / "old.pt", "--params-file", params,
                            "--eta", "1.5", "--input-height", "42", "--score-resolution", "image")
    assert meta["params"] == {"eta": 1.5, "lam": 2.0, "delta": 0.0}
    assert meta["protocol"]["input"] == [42, 56] and meta["protocol"]["score_resolution"] == "image"


def test_params_file_values_is_the_checked_dict(tmp_path):
    from hypood_ros.cli.params_file import params_file_values

    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    threshold: 1\n    min_area: 40\n    roi_drop_known: true\n")
    assert params_file_values(params) == {"threshold": 1.0, "min_area": 40, "roi_drop_known": True}


def test_export_writes_the_recorded_size(models, server, tmp_path):
    from hypood_ros.runtimes import load_backend

    result = server.run(["export", "--model", models / "recorded.pt", "--out", tmp_path / "m.onnx"], cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert notes(result) == [] and "input [1,3,28,56]" in result.stdout
    assert load_backend(tmp_path / "m.onnx").input_shape == (1, 3, *RECORDED)
