"""The network input size a checkpoint records (metadata input_size).

Checkpoints here are the tiny preset, saved in the test: one recording 28x56, one recording nothing (as every
checkpoint written before the field existed).
"""
from __future__ import annotations

import json
import zipfile

import pytest
import torch
import yaml

from hypood_ros.errors import CheckpointError
from hypood_ros.model import load_checkpoint, save_checkpoint
from hypood_ros.model.checkpoint import read_torch_file, recorded_input_size, write_input_size

RECORDED = (28, 56)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("models")
    save_checkpoint(tiny_model, folder / "recorded.pt", metadata={"input_size": list(RECORDED)})
    save_checkpoint(tiny_model, folder / "old.pt")
    return folder


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
    for read in (load_checkpoint, recorded_input_size):
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
    from hypood_ros.demo import MODEL_DIR

    metrics = json.loads((MODEL_DIR / "metrics.json").read_text())
    params = yaml.safe_load((MODEL_DIR / "params.yaml").read_text())["/**"]["ros__parameters"]
    assert load_checkpoint(MODEL_DIR / "model.pt").input_size == tuple(metrics["input_size"]) == (280, 560)
    assert (params["input_height"], params["input_width"]) == (280, 560)
