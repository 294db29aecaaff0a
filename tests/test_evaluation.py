"""Benchmark readers in their published layouts, and `hypood eval` end to end on a tiny model."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from hypood_ros.evaluation.datasets import DatasetError, left_out_line, open_dataset
from hypood_ros.evaluation.evaluate import select_scores
from hypood_ros.scores import SCORES

H, W = 42, 56


def image(seed):
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def label(ood_value, void=True):
    lab = np.zeros((H, W), np.uint8)
    lab[10:20, 20:35] = ood_value
    if void:
        lab[:4] = 255
    return lab


def make(root, name, n=2):
    """Write `n` samples of dataset `name` in its published layout; returns the label paths."""
    labels = []
    for i in range(n):
        if name.startswith("smiyc"):
            track = "AnomalyTrack" if name == "smiyc-anomaly" else "ObstacleTrack"
            base = root / f"dataset_{track}"
            (base / "images").mkdir(parents=True, exist_ok=True)
            (base / "labels_masks").mkdir(exist_ok=True)
            ext = ".jpg" if track == "AnomalyTrack" else ".webp"
            # The benchmark's frame names: validation0000 (Anomaly Track), validation_1 (Obstacle Track).
            stem = f"validation{i:04d}" if track == "AnomalyTrack" else f"validation_{i + 1}"
            cv2.imwrite(str(base / "images" / f"{stem}{ext}"), image(i))
            path = base / "labels_masks" / f"{stem}_labels_semantic.png"
            cv2.imwrite(str(path), label(1))
        elif name == "road-anomaly":
            (root / "frames" / f"animals{i:02d}.labels").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "frames" / f"animals{i:02d}.jpg"), image(i))
            path = root / "frames" / f"animals{i:02d}.labels" / "labels_semantic.png"
            cv2.imwrite(str(path), np.dstack([label(2, void=False)] * 3))
            (root / "frame_list.json").write_text(json.dumps([f"animals{j:02d}.jpg" for j in range(n)]))
        elif name == "fs-lostandfound":
            (root / "fishyscapes_lostandfound").mkdir(parents=True, exist_ok=True)
            (root / "laf_images").mkdir(exist_ok=True)
            stem = f"04_Maurener_Weg_8_000000_0000{i:02d}_"
            cv2.imwrite(str(root / "laf_images" / f"{stem}leftImg8bit.png"), image(i))
            path = root / "fishyscapes_lostandfound" / f"{i:04d}_{stem}labels.png"
            cv2.imwrite(str(path), label(1))
        elif name == "fs-static":
            (root / "fs_val_v1").mkdir(parents=True, exist_ok=True)
            (root / "fs_static_images_v1").mkdir(exist_ok=True)
            cv2.imwrite(str(root / "fs_static_images_v1" / f"{i}_rgb.png"), image(i))
            path = root / "fs_val_v1" / f"{i}_labels.png"
            cv2.imwrite(str(path), label(1))
        labels.append(path)
    return labels


NAMES = ["smiyc-anomaly", "smiyc-obstacle", "road-anomaly", "fs-lostandfound", "fs-static"]


@pytest.mark.parametrize("name", NAMES)
def test_reader_loads_the_published_layout(tmp_path, name):
    make(tmp_path, name)
    dataset = open_dataset(name, tmp_path)
    assert len(dataset.samples) == 2
    rgb, lab = dataset.load(dataset.samples[1])
    assert rgb.shape == (H, W, 3) and lab.shape == (H, W)
    assert (lab[10:20, 20:35] == 1).all()  # the OOD blob, whatever the dataset's own value
    assert set(np.unique(lab)) <= {0, 1, 255}
    assert (lab[6:9] == 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_missing_file_and_out_of_range_label(tmp_path, name):
    labels = make(tmp_path, name)
    dataset = open_dataset(name, tmp_path)
    dataset.samples[0].image.unlink()
    with pytest.raises(DatasetError, match="missing file"):
        dataset.load(dataset.samples[0])
    bad = label(2, void=False) if name == "road-anomaly" else label(1)
    bad[0, 0] = 7
    cv2.imwrite(str(labels[1]), bad)
    with pytest.raises(DatasetError, match=r"label values \[7\] out of range"):
        dataset.load(dataset.samples[1])


def test_smiyc_frames_follow_the_benchmark_validation_split(tmp_path):
    make(tmp_path, "smiyc-obstacle", n=30)  # validation_1 ... validation_30
    base = tmp_path / "dataset_ObstacleTrack"
    cv2.imwrite(str(base / "images" / "gravel_0001.webp"), image(0))  # a test-scene frame with a label
    cv2.imwrite(str(base / "labels_masks" / "gravel_0001_labels_semantic.png"), label(1))
    dataset = open_dataset("smiyc-obstacle", tmp_path)
    left_out = {"validation_19", *(f"validation_{i}" for i in range(21, 30)), "gravel_0001"}
    assert set(dataset.left_out) == left_out
    assert {s.name for s in dataset.samples} == {f"validation_{i}" for i in range(1, 31)} - left_out
    assert len(dataset.samples) == 20

    make(tmp_path, "smiyc-anomaly", n=2)
    anomaly = tmp_path / "dataset_AnomalyTrack"
    cv2.imwrite(str(anomaly / "images" / "zebra0000.jpg"), image(0))
    cv2.imwrite(str(anomaly / "labels_masks" / "zebra0000_labels_semantic.png"), label(1))
    dataset = open_dataset("smiyc-anomaly", tmp_path)
    assert [s.name for s in dataset.samples] == ["validation0000", "validation0001"]
    assert dataset.left_out == ["zebra0000"]
    assert left_out_line(dataset) == ("1 frame left out (the benchmark evaluates only the validation* frames): "
                                      "zebra0000")
    obstacle = open_dataset("smiyc-obstacle", tmp_path)
    line = left_out_line(obstacle)
    assert line.startswith("11 frames left out (the benchmark evaluates only the validation_* scene and leaves out "
                           "validation_19* and validation_21* to validation_29*): ")
    assert line.endswith("): gravel_0001, validation_19, validation_21, validation_22, validation_23 and 6 more (all "
                         "in results.json meta.left_out)")


def test_select_scores_leaves_out_duplicates_and_unusable_scores():
    names = select_scores("all", has_sml=False)
    assert "sml" not in names and "delta_max_logit" not in names and "normalized_max_logit" in names
    assert "delta_max_logit" in select_scores("all", has_sml=True, delta=0.5)
    assert select_scores("delta_max_logit, energy", has_sml=False) == ["delta_max_logit", "energy"]


def test_wrong_root_is_explained(tmp_path):
    with pytest.raises(DatasetError, match="dataset_AnomalyTrack"):
        open_dataset("smiyc-anomaly", tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset"):
        open_dataset("cityscapes", tmp_path)


def test_hypood_eval_end_to_end(tmp_path, tiny_checkpoint):
    make(tmp_path / "smiyc", "smiyc-anomaly", n=3)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "hypood_ros.cli", "eval", "--dataset", "smiyc-anomaly",
                           "--root", str(tmp_path / "smiyc"), "--model", str(tiny_checkpoint), "--height", "42",
                           "--width", "56", "--out", str(out), "--heatmaps", "1", "--protocol", "sliding"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    expected = {n for n, s in SCORES.items() if not s.needs_sml} - {"delta_max_logit"}  # = NML at delta 0
    assert set(results["scores"]) == expected
    for m in results["scores"].values():
        assert 0 <= m["AP"] <= 1 and 0 <= m["AUROC"] <= 1 and 0 <= m["FPR95"] <= 1
    assert results["meta"]["pixels"]["ood"] == 3 * 150
    assert "| hyperspherical_llr |" in (out / "results.md").read_text()
    assert results["meta"]["protocol"]["name"] == "sliding" and "Protocol: sliding" in proc.stdout
    for png in ["roc.png", "pr.png", "hist_energy.png", "heatmaps/validation0000_uem_llr.png"]:
        assert (out / png).is_file(), png


@pytest.mark.slow
def test_fit_sml_then_evaluate_sml(tmp_path, tiny_checkpoint):
    make(tmp_path / "fs", "fs-static", n=2)
    stats = tmp_path / "sml.json"
    common = ["--model", str(tiny_checkpoint), "--height", "42", "--width", "56"]
    proc = subprocess.run([sys.executable, "-m", "hypood_ros.cli", "fit-sml", "--images",
                           str(tmp_path / "fs" / "fs_static_images_v1"), "--out", str(stats), *common],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(stats.read_text())
    assert len(data["mean"]) == 19 and sum(data["pixels_per_class"]) == 2 * (42 // 14 * 4) * (56 // 14 * 4)
    proc = subprocess.run([sys.executable, "-m", "hypood_ros.cli", "eval", "--dataset", "fs-static", "--root",
                           str(tmp_path / "fs"), "--scores", "sml,energy", "--sml-stats", str(stats),
                           "--out", str(tmp_path / "out"), *common], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads((tmp_path / "out" / "results.json").read_text())["scores"]) == {"sml", "energy"}


@pytest.mark.slow
def test_run_with_sml_statistics(tmp_path, tiny_checkpoint):
    make(tmp_path / "fs", "fs-static", n=1)
    images = tmp_path / "fs" / "fs_static_images_v1"
    stats = tmp_path / "sml.json"
    stats.write_text(json.dumps({"mean": [0.1] * 19, "std": [0.5] * 19}))
    base = [sys.executable, "-m", "hypood_ros.cli", "run", "--model", str(tiny_checkpoint), "--images", str(images),
            "--height", "42", "--width", "56", "--score", "sml"]
    proc = subprocess.run(base + ["--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "needs SML statistics" in proc.stderr
    proc = subprocess.run(base + ["--out", str(tmp_path / "out"), "--sml-stats", str(stats)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert np.isfinite(np.load(tmp_path / "out" / "0_rgb_score.npy")).all()
    stats.write_text("{not json")
    proc = subprocess.run(base + ["--out", str(tmp_path / "out2"), "--sml-stats", str(stats)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "cannot read SML statistics" in proc.stderr


def official_windows(length, window, stride):
    """The authors' loop: starts below length - window every `stride`, plus a window flush with the edge."""
    spans = list(zip(range(0, length - window, stride), range(window, length, stride)))
    if (length - window) % stride != 0:
        spans.append((length - window, length))
    return spans


@pytest.mark.parametrize("stride", [(14, 18), (20, 40)])
def test_sliding_protocol_equals_an_independent_sliding_window(tiny_checkpoint, stride):
    import torch
    import torch.nn.functional as F

    from hypood_ros.evaluation.evaluate import sliding_maps
    from hypood_ros.preprocess import preprocess
    from hypood_ros.runtimes import load_backend

    backend = load_backend(tiny_checkpoint, input_hw=(42, 56))
    height, width = 71, 151  # (71 - 42) and (151 - 56) are no multiples of either stride
    rgb = np.random.default_rng(5).integers(0, 256, (height, width, 3), dtype=np.uint8)
    seg = torch.zeros(1, 19, height, width)
    uem = torch.zeros(1, 2, height, width)
    norm = torch.zeros(1, 1, height, width)
    count = torch.zeros(1, 1, height, width)
    up = dict(size=(42, 56), mode="bilinear", align_corners=False)
    windows = 0
    for top, bottom in official_windows(height, 42, stride[0]):
        for left, right in official_windows(width, 56, stride[1]):
            with torch.no_grad():
                out = backend.run(preprocess([np.ascontiguousarray(rgb[top:bottom, left:right])], (42, 56), "cpu"))
            seg[:, :, top:bottom, left:right] += F.interpolate(out["seg_logits"], **up)
            uem[:, :, top:bottom, left:right] += F.interpolate(out["uem_logits"], **up)
            norm[:, :, top:bottom, left:right] += F.interpolate(out["embedding"].norm(dim=1, keepdim=True), **up)
            count[:, :, top:bottom, left:right] += 1
            windows += 1
    assert windows >= 4 and count.min() >= 1
    seg, uem, norm = seg / count, uem / count, norm / count
    want_llr = (uem[:, 1] - uem[:, 0] - seg.max(dim=1)[0])[0]
    bias = backend.head.bias.view(1, -1, 1, 1)
    want_ne = -torch.logsumexp((seg - bias) / norm, dim=1)[0]

    with torch.no_grad():
        maps, class_ids = sliding_maps(backend, rgb, ["uem_llr", "normalized_energy"], {}, stride=stride)
        _, network_ids = sliding_maps(backend, rgb, ["uem_llr"], {}, resolution="network", stride=stride)
    torch.testing.assert_close(maps["uem_llr"], want_llr, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(maps["normalized_energy"], want_ne, rtol=1e-5, atol=1e-5)
    # The class ids (the mask's region is formed from them) are the argmax of the averaged logits, at both
    # score resolutions; pixels whose two best logits are closer than float rounding may go either way.
    top2 = seg[0].topk(2, dim=0).values
    clear = (top2[0] - top2[1]) > 1e-4
    want_ids = seg[0].argmax(dim=0)
    assert clear.float().mean() > 0.99 and len(torch.unique(want_ids)) > 1
    for ids in (class_ids, network_ids):
        assert ids.dtype == torch.uint8 and ids.shape == (height, width)
        assert torch.equal(ids.long()[clear], want_ids[clear])


def test_sliding_pads_images_smaller_than_the_window(tiny_checkpoint):
    import torch

    from hypood_ros.evaluation.evaluate import score_maps
    from hypood_ros.runtimes import load_backend

    backend = load_backend(tiny_checkpoint, input_hw=(42, 56))
    rgb = np.random.default_rng(6).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    padded = np.zeros((42, 56, 3), np.uint8)
    padded[6:36, 8:48] = rgb  # centred black padding
    got = score_maps(backend, rgb, ["uem_llr"], (30, 40), {}, protocol="sliding")["uem_llr"]
    whole = score_maps(backend, padded, ["uem_llr"], (42, 56), {}, protocol="single")["uem_llr"]
    assert got.shape == (30, 40)
    np.testing.assert_allclose(got, whole[6:36, 8:48], rtol=1e-5, atol=1e-5)
    assert torch.is_tensor(torch.from_numpy(got))


def test_summary_names_the_protocol_and_resolution(tmp_path, tiny_checkpoint):
    from hypood_ros.evaluation.evaluate import evaluate
    from hypood_ros.runtimes import load_backend

    make(tmp_path / "ra", "road-anomaly", n=2)
    backend = load_backend(tiny_checkpoint, input_hw=(28, 42))  # the 42x56 images need 4 windows
    dataset = open_dataset("road-anomaly", tmp_path / "ra")
    for protocol, resolution in (("sliding", "image"), ("single", "network")):
        out = tmp_path / protocol
        results = evaluate(backend, dataset, ["uem_llr", "energy"], out, {}, heatmaps=0, protocol=protocol,
                           resolution=resolution)
        assert set(results) == {"uem_llr", "energy"}
        meta = json.loads((out / "results.json").read_text())["meta"]
        assert meta["protocol"]["name"] == protocol and meta["protocol"]["score_resolution"] == resolution
        text = (out / "results.md").read_text()
        assert f"Protocol: {protocol} (" in text and f"score resolution: {resolution}" in text
    assert "stride 42x28" in (tmp_path / "sliding" / "results.md").read_text()  # 140 capped at the window


def test_no_progress_silences_the_bar_on_a_terminal(tmp_path, tiny_checkpoint):
    """Every command with a bar takes --no-progress; `run` shown here, with the bar drawn without it."""
    from terminal import on_terminal

    make(tmp_path / "fs", "fs-static", n=2)
    base = ["run", "--model", tiny_checkpoint, "--images", tmp_path / "fs" / "fs_static_images_v1", "--height", "42",
            "--width", "56"]
    returncode, drawn, _ = on_terminal([*base, "--out", tmp_path / "shown"])
    assert returncode == 0 and b"hypood run" in drawn and b"2/2" in drawn, drawn
    returncode, drawn, _ = on_terminal([*base, "--out", tmp_path / "quiet", "--no-progress"])
    assert returncode == 0 and b"hypood run" not in drawn and b"\r" not in drawn, drawn
