"""Class names and colours: defaults for any K, carried by checkpoints, used by the colour map."""
import json

import numpy as np
import pytest
import torch

from hypood_ros.classes import CITYSCAPES_COLORS, CITYSCAPES_NAMES, ClassInfo, default_classes
from hypood_ros.errors import CheckpointError
from hypood_ros.model import build_segmentor, load_checkpoint, save_checkpoint
from hypood_ros.model.checkpoint import FORMAT, VERSION
from hypood_ros.pipeline import FramePipeline
from hypood_ros.runtimes import load_backend


def test_nineteen_classes_are_cityscapes():
    info = default_classes(19)
    assert info.names == CITYSCAPES_NAMES and info.names[0] == "road" and info.names[18] == "bicycle"
    assert info.colors == CITYSCAPES_COLORS


@pytest.mark.parametrize("k", [1, 2, 18, 20, 40, 255])
def test_any_class_count_gets_names_and_distinct_colours(k):
    info = default_classes(k)
    assert len(info.names) == len(set(info.names)) == k
    assert len(set(info.colors)) == k and (0, 0, 0) not in info.colors  # black is "unlabelled"
    lut = info.lut()
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert [tuple(c) for c in lut[:k]] == list(info.colors)
    assert not lut[k:].any()  # ids without a class, 255 included, are black
    assert info.colors[: min(k, 19)] == CITYSCAPES_COLORS[:k]


def test_twenty_classes_name_label_nineteen():
    info = default_classes(20)
    assert info.names[19] == "class_19" and info.colors[19] not in CITYSCAPES_COLORS
    data = json.loads(info.to_json())
    assert data["names"][19] == "class_19" and len(data["colors"]) == 20 and data["unlabelled"] == 255


@pytest.mark.parametrize("data, message", [
    ({"names": ["a", "b"], "colors": [[1, 2, 3]]}, "2 class names but 1 colours"),
    ({"names": ["a"], "colors": [[1, 2, 300]]}, "0..255"),
    ({"names": ["a"], "colors": [[1, 2]]}, "0..255"),
    ({"names": [""], "colors": [[1, 2, 3]]}, "non-empty"),
    ({"names": "road", "colors": []}, "lists"),
    ({"names": ["a", "b"], "colors": [[1, 2, 3], [4, 5, 6]]}, "the model has 3"),
])
def test_bad_class_metadata_is_refused(data, message):
    with pytest.raises(ValueError, match=message):
        ClassInfo.from_metadata(data, 3)


@pytest.fixture(scope="module")
def twenty_class_model():
    torch.manual_seed(1)
    return build_segmentor("tiny", num_classes=20).eval()


def test_checkpoint_carries_the_classes(tmp_path, twenty_class_model):
    names = [f"thing {i}" for i in range(20)]
    colors = [[10 * i, 255 - 10 * i, 7] for i in range(20)]
    path = save_checkpoint(twenty_class_model, tmp_path / "m.pt",
                           metadata={"classes": {"names": names, "colors": colors}})
    payload = torch.load(path, map_location="cpu", weights_only=True)  # plain data: the safe loader takes it
    assert payload["metadata"]["classes"]["names"] == names
    model = load_checkpoint(path)
    assert model.classes.names == tuple(names) and model.classes.colors[19] == (190, 65, 7)
    again = save_checkpoint(model, tmp_path / "again.pt")  # a loaded model keeps its classes when saved
    assert load_checkpoint(again).classes == model.classes


def test_checkpoint_without_classes_gets_the_default(tmp_path, twenty_class_model):
    path = tmp_path / "old.pt"
    torch.save({"format": FORMAT, "version": VERSION, "config": twenty_class_model.config,
                "state_dict": twenty_class_model.state_dict(), "metadata": {}}, path)
    assert load_checkpoint(path).classes == default_classes(20)
    assert load_checkpoint(save_checkpoint(twenty_class_model, tmp_path / "new.pt")).classes == default_classes(20)


def test_checkpoint_with_wrong_classes_is_one_line(tmp_path, twenty_class_model):
    with pytest.raises(CheckpointError, match="the model has 20"):
        save_checkpoint(twenty_class_model, tmp_path / "m.pt", metadata={"classes": default_classes(19).to_metadata()})
    assert not (tmp_path / "m.pt").exists()
    path = tmp_path / "bad.pt"
    torch.save({"format": FORMAT, "version": VERSION, "config": twenty_class_model.config,
                "state_dict": twenty_class_model.state_dict(),
                "metadata": {"classes": {"names": ["x"] * 20, "colors": [[0, 0]] * 20}}}, path)
    with pytest.raises(CheckpointError, match=r"bad\.pt: class colours"):
        load_checkpoint(path)


def test_colour_map_uses_the_model_classes(tmp_path, twenty_class_model):
    colors = [[i, 2 * i, 3 * i + 1] for i in range(20)]
    path = save_checkpoint(twenty_class_model, tmp_path / "m.pt",
                           metadata={"classes": {"names": [f"c{i}" for i in range(20)], "colors": colors}})
    pipeline = FramePipeline(load_backend(path, input_hw=(28, 56)))
    assert pipeline.classes.num_classes == 20
    frame = np.random.default_rng(0).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    result = pipeline.process(frame)
    expected = np.asarray(colors, dtype=np.uint8)[result.labels]
    np.testing.assert_array_equal(result.color, expected)


def test_onnx_export_carries_the_classes(tmp_path, twenty_class_model):
    from hypood_ros.runtimes.export import export_onnx

    names = [f"part {i}" for i in range(20)]
    colors = [[5 * i, 100, 255 - 5 * i] for i in range(20)]
    path = save_checkpoint(twenty_class_model, tmp_path / "m.pt",
                           metadata={"classes": {"names": names, "colors": colors}})
    onnx_path = tmp_path / "m.onnx"
    export_onnx(load_checkpoint(path), onnx_path, 28, 56, verify=False)
    backend = load_backend(onnx_path)
    assert backend.classes.names == tuple(names) and backend.classes.colors[19] == (95, 100, 160)
    assert FramePipeline(backend).classes == backend.classes

    import onnx

    from hypood_ros.classes import CLASSES_KEY
    from hypood_ros.errors import BackendError

    proto = onnx.load(str(onnx_path))
    next(p for p in proto.metadata_props if p.key == CLASSES_KEY).value = '{"names": ["x"], "colors": [[1, 2, 3]]}'
    onnx.save(proto, str(onnx_path))
    with pytest.raises(BackendError, match="invalid class metadata: class metadata names 1 classes, the model has 20"):
        load_backend(onnx_path)
