"""`hypood eval`'s obstacle-mask metrics: the node's mask, measured as the SMIYC benchmark measures a mask.

The numbers in results.json are checked against a computation made here from the parts themselves (the
scores registry's maps and class ids, `region_of_interest`, `clean_mask`, `components`), on generated
street scenes; the threshold's provenance, the region figures and the command line are checked through
`hypood eval` itself.
"""
from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
import torch
import yaml

from hypood_ros.apps.demo import MODEL_DIR
from hypood_ros.contrast import contrast_score
from hypood_ros.evaluation.components import TRACK_SIZES, ComponentTally, best_f1_threshold, instances, segment_metrics
from hypood_ros.evaluation.datasets import open_dataset
from hypood_ros.evaluation.evaluate import evaluate
from hypood_ros.evaluation.mask_metrics import BEST_F1, MaskSpec, MaskTally, mask_result
from hypood_ros.postprocess import clean_mask
from hypood_ros.preprocess import preprocess
from hypood_ros.roi import region_of_interest
from hypood_ros.runtimes import load_backend
from hypood_ros.scores import ScoreInputs, score_maps
from hypood_ros.synthetic import writers

TINY_INPUT = ("--input-height", "28", "--input-width", "56")
PARAMS = {"eta": 1.5, "lam": 1.0, "delta": 0.0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three generated scenes (60x120, two anomalies each) in both SMIYC layouts."""
    root = tmp_path_factory.mktemp("smiyc")
    for i in range(3):
        frame = writers.scene(300 + i, (60, 120), "evaluation", anomalies=2)
        frame.index = i
        writers.write_smiyc(root, [frame])
        writers.write_smiyc(root, [frame], track="ObstacleTrack")
    assert len(open_dataset("smiyc-obstacle", root).samples) == 3
    return root


@pytest.fixture(scope="module")
def demo_backend():
    """The shipped model: trained on such scenes, so that its road region is a real part of the picture
    (the random tiny model predicts no road at all)."""
    return load_backend(str(MODEL_DIR / "model.pt"), input_hw=(280, 560))


def direct_frames(backend, dataset, score):
    """Per frame (score, predicted train ids, label), straight from the backend and the scores registry."""
    frames = []
    for sample in dataset.samples:
        rgb, label = dataset.load(sample)
        with torch.no_grad():
            out = backend.run(preprocess([rgb], backend.input_shape[2:], "cpu"))
            inputs = ScoreInputs(out["seg_logits"], out["embedding"], backend.head, out["uem_logits"])
            maps, ids = score_maps([score], inputs, label.shape, "image", **PARAMS)
        frames.append((maps[score][0].numpy(), ids[0].numpy(), label))
    return frames


def direct_metrics(frames, spec, threshold, sizes):
    """The mask's metrics from the parts: region_of_interest, clean_mask, instances, segment_metrics."""
    tally = ComponentTally()
    counts = {}
    outside = 0
    for score, ids, label in frames:
        region = region_of_interest(spec.roi, ids, None, spec.roi_margin, spec.roi_drop_known)
        inside = np.ones(label.shape, bool) if region is None else region
        mask = clean_mask(contrast_score(score, region, spec.local_contrast) > threshold, region, spec.opening,
                          spec.min_area)
        tally.add(segment_metrics(*instances(mask, label, *sizes)))
        for key, pixels in (("ood", label == 1), ("id", label == 0), ("ood_region", (label == 1) & inside),
                            ("id_region", (label == 0) & inside)):
            counts[key] = counts.get(key, 0) + int(pixels.sum())
            counts[f"{key}_flagged"] = counts.get(f"{key}_flagged", 0) + int((pixels & (mask > 0)).sum())
        count, components = cv2.connectedComponents((label == 1).astype(np.uint8), connectivity=8)
        for k in range(1, count):
            blob = components == k
            outside += int(blob.sum() >= sizes[1] and 2 * (blob & inside).sum() < blob.sum())
    return tally.summary(), counts, outside


CASES = [  # (model, dataset, score, quantile of the scores used as threshold, mask parameters)
    ("demo", "smiyc-obstacle", "normalized_max_logit", 0.9, dict(roi="road")),
    ("demo", "smiyc-obstacle", "hyperspherical_llr", 0.8, dict(roi="road", roi_margin=0, roi_drop_known=True,
                                                               opening=3, min_area=20)),
    ("demo", "smiyc-anomaly", "msp", 0.7, dict(roi="road_corridor", roi_margin=6)),
    ("tiny", "smiyc-obstacle", "msp", 0.8, dict(roi="none", opening=3, min_area=10)),
    ("demo", "smiyc-obstacle", "normalized_max_logit", 0.7, dict(roi="road", local_contrast=0.15)),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-{c[4]['roi']}" + ("-contrast" * ("local_contrast" in c[4]))
                                              for c in CASES])
def test_results_equal_a_direct_computation(case, data, demo_backend, tiny_checkpoint, tmp_path):
    model, name, score, quantile, values = case
    backend = demo_backend if model == "demo" else load_backend(tiny_checkpoint, input_hw=(28, 56))
    dataset = open_dataset(name, data)
    frames = direct_frames(backend, dataset, score)
    contrast = values.get("local_contrast", 0.0)
    if contrast:  # the threshold is of what the mask thresholds: the contrast inside the region
        regions = [region_of_interest(values["roi"], ids, None) for _, ids, _ in frames]
        pool = [contrast_score(s, r, contrast)[r & (lab < 255)] for (s, _, lab), r in zip(frames, regions)]
    else:
        pool = [s[lab < 255] for s, _, lab in frames]
    threshold = float(np.quantile(np.concatenate(pool), quantile))
    spec = MaskSpec(score=score, threshold=threshold, source="given", **values)
    want, counts, outside = direct_metrics(frames, spec, threshold, TRACK_SIZES[name])
    # the case measures something: ground truth found and missed, a mask with components
    assert want["gt_components"] > 0 and want["pred_components"] > 0 and counts["ood_flagged"] > 0

    with io.StringIO() as sink:
        from tqdm import tqdm

        with tqdm(total=10, file=sink) as bar:
            evaluate(backend, dataset, ["energy"], tmp_path, PARAMS, heatmaps=0, progress=bar, mask=spec)
            assert bar.n == len(dataset.samples)  # the threshold is given: one pass
    got = json.loads((tmp_path / "results.json").read_text())["mask"]
    assert got["components"] == want
    assert {k: got["pixels"][k] for k in counts} == counts
    assert got["pixels"]["recall"] == counts["ood_flagged"] / counts["ood"]
    assert got["pixels"]["fpr_region"] == counts["id_region_flagged"] / counts["id_region"]
    assert got["gt_outside_region"] == outside
    assert got["threshold"] == threshold and got["threshold_source"] == "given" and got["score"] == score
    assert got["sizes"] == {"min_pred": TRACK_SIZES[name][0], "min_gt": TRACK_SIZES[name][1],
                            "config": "SegEval-" + ("ObstacleTrack" if name == "smiyc-obstacle" else "AnomalyTrack")}
    if values["roi"] == "none":
        assert counts["id_region"] == counts["id"] and outside == 0
    else:  # a region that is a real part of the picture
        assert 0 < counts["id_region"] < counts["id"]
    if values["roi"] == "road_corridor":
        assert any("road region stands in" in note for note in got["notes"])
    assert got["local_contrast"] == contrast
    text = (tmp_path / "results.md").read_text()
    assert f"## Obstacle mask: {score} > {threshold:.9g}" in text
    assert ("minus its local mean in the region" in text) == bool(contrast)
    assert f"| {100 * want['F1_50']:.2f} | {100 * want['F1_75']:.2f} | {100 * want['F1_mean']:.2f} |" in text


def test_without_a_threshold_the_best_pixel_f1_takes_a_second_pass(data, tiny_checkpoint, tmp_path):
    from tqdm import tqdm

    backend = load_backend(tiny_checkpoint, input_hw=(28, 56))
    dataset = open_dataset("smiyc-obstacle", data)
    frames = direct_frames(backend, dataset, "msp")
    neg = np.concatenate([s[lab == 0] for s, _, lab in frames])
    pos = np.concatenate([s[lab == 1] for s, _, lab in frames])
    best = best_f1_threshold(neg, pos)
    spec = MaskSpec(score="msp", roi="none")
    want, _, _ = direct_metrics(frames, spec, best.threshold, TRACK_SIZES["smiyc-obstacle"])
    with io.StringIO() as sink, tqdm(total=6, file=sink) as bar:
        results = evaluate(backend, dataset, ["energy"], tmp_path, PARAMS, heatmaps=0, progress=bar, mask=spec)
        assert bar.n == 2 * len(dataset.samples)
    assert set(results) == {"energy"}  # the mask's score is scored, but not tabulated as a score
    got = json.loads((tmp_path / "results.json").read_text())
    assert set(got["scores"]) == {"energy"}
    mask = got["mask"]
    assert mask["threshold"] == pytest.approx(best.threshold, rel=1e-6)
    assert mask["best_pixel_f1"] == pytest.approx(best.f1, rel=1e-6)
    assert mask["threshold_source"] == BEST_F1 and mask["components"] == want
    assert "best pixel F1 of the score on this dataset" in (tmp_path / "results.md").read_text()


def test_ground_truth_outside_the_region_and_the_pixel_rates():
    """Two objects: one 40% inside the region (mostly outside), one exactly half inside (not mostly)."""
    label = np.zeros((40, 60), np.uint8)
    label[5:15, 5:15] = 1  # 100 px, columns 5..14
    label[25:35, 30:40] = 1  # 100 px, columns 30..39
    label[:, 55:] = 255
    region = np.zeros(label.shape, bool)
    region[:, 11:35] = True  # 4 of 10 columns of the first object, 5 of 10 of the second
    mask = np.zeros(label.shape, np.uint8)
    mask[25:35, 30:35] = 255  # half of the second object
    mask[0:2, 20:30] = 255  # 20 px on in-distribution pixels, inside the region
    tally = MaskTally("smiyc-obstacle")
    tally.add(mask, region, label)
    summary = tally.summary()
    assert summary["gt_outside_region"] == 1
    px = summary["pixels"]
    assert (px["ood"], px["ood_flagged"], px["ood_region"], px["ood_region_flagged"]) == (200, 50, 90, 50)
    inside_id = int(region[:, :55].sum()) - 90
    assert (px["id"], px["id_flagged"], px["id_region"], px["id_region_flagged"]) == (40 * 55 - 200, 20, inside_id, 20)
    assert px["recall"] == 0.25 and px["fpr_region"] == 20 / inside_id
    comp = summary["components"]  # sIoU of the second object 50 / 100; the first is missed
    assert (comp["tp_25"], comp["fn_25"], comp["fp_25"], comp["tp_75"]) == (1, 1, 0, 0)
    assert comp["sIoU_gt"] == pytest.approx(0.25)


def test_datasets_without_a_track_use_the_generic_sizes():
    for name in ("road-anomaly", "fs-lostandfound", "fs-static"):
        tally = MaskTally(name)
        assert (tally.min_pred, tally.min_gt, tally.sizes_config) == (500, 100, "SegEval")
        notes = mask_result(MaskSpec(threshold=0.0, source="given"), 0.0, tally, name)["notes"]
        assert notes == [f"{name} has no SMIYC track: components use the benchmark's generic SegEval sizes "
                         "(500 px predicted, 100 px ground truth)"]
    assert (MaskTally("smiyc-obstacle").min_pred, MaskTally("smiyc-anomaly").min_gt) == (50, 100)


# ---- through `hypood eval` ----

def run_eval(server, tmp_path, data, out, *args, dataset="smiyc-obstacle"):
    result = server.run(["eval", "--dataset", dataset, "--data-root", data, "--scores", "msp,energy",
                         "--heatmaps", "0", *args, "--out", tmp_path / out], cwd=tmp_path)
    assert result.code == 0, result.stderr
    summary = json.loads((tmp_path / out / "results.json").read_text())
    return result, summary, (tmp_path / out / "results.md").read_text()


def notes(result):
    return [line for line in result.stderr.splitlines() if line.startswith("note: ")]


@pytest.mark.slow
def test_threshold_from_the_flag_the_params_file_or_the_best_f1(data, tiny_checkpoint, server, tmp_path):
    tiny = ["--model", tiny_checkpoint, *TINY_INPUT]
    with_threshold, without = tmp_path / "calibrated.yaml", tmp_path / "uncalibrated.yaml"
    with_threshold.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"score": "msp", "threshold": 0.25,
                                                                           "roi": "none", "min_area": 4}}}))
    without.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"score": "msp", "roi": "none"}}}))

    result, summary, text = run_eval(server, tmp_path, data, "flag", *tiny, "--threshold", "0.5")
    mask = summary["mask"]
    assert (mask["threshold"], mask["threshold_source"], mask["best_pixel_f1"]) == (0.5, "--threshold", None)
    assert mask["score"] == "hyperspherical_llr" and mask["roi"] == "road" and notes(result) == []
    assert "Threshold: --threshold." in text

    result, summary, text = run_eval(server, tmp_path, data, "file", *tiny, "--params-file", with_threshold)
    mask = summary["mask"]
    assert (mask["score"], mask["threshold"], mask["roi"], mask["min_area"]) == ("msp", 0.25, "none", 4)
    assert mask["threshold_source"] == f"--params-file {with_threshold}" and notes(result) == []
    assert "## Obstacle mask: msp > 0.25\n" in text and f"Threshold: --params-file {with_threshold}." in text

    # the command line wins over the file, value by value
    _, summary, _ = run_eval(server, tmp_path, data, "both", *tiny, "--params-file", with_threshold,
                             "--threshold", "0.5", "--roi", "road", "--roi-drop-known")
    mask = summary["mask"]
    assert (mask["threshold"], mask["roi"], mask["roi_drop_known"], mask["min_area"]) == (0.5, "road", True, 4)

    backend = load_backend(tiny_checkpoint, input_hw=(28, 56))
    frames = direct_frames(backend, open_dataset("smiyc-obstacle", data), "msp")
    best = best_f1_threshold(np.concatenate([s[lab == 0] for s, _, lab in frames]),
                             np.concatenate([s[lab == 1] for s, _, lab in frames]))
    result, summary, text = run_eval(server, tmp_path, data, "best", *tiny, "--params-file", without)
    mask = summary["mask"]
    assert mask["threshold"] == pytest.approx(best.threshold, rel=1e-5) and mask["threshold_source"] == BEST_F1
    assert notes(result) == [f"note: --params-file {without}: it has no threshold; the mask takes the threshold "
                             "with the best pixel F1 on this dataset (a second pass over it)"]
    assert f"Note: --params-file {without}: it has no threshold" in text and "pixel F1 " in text

    # a threshold for another score is no threshold for the mask's score
    result, summary, _ = run_eval(server, tmp_path, data, "other", *tiny, "--params-file", with_threshold,
                                  "--mask-score", "energy")
    assert summary["mask"]["score"] == "energy" and summary["mask"]["threshold_source"] == BEST_F1
    assert notes(result) == [f"note: --params-file {with_threshold}: its threshold is for score msp, not for the "
                             "mask score energy; the mask takes the threshold with the best pixel F1 on this dataset "
                             "(a second pass over it)"]

    # no params file: the benchmark's default without a word
    result, summary, _ = run_eval(server, tmp_path, data, "default", *tiny, "--mask-score", "msp")
    assert summary["mask"]["threshold_source"] == BEST_F1 and notes(result) == []


def test_region_figures_follow_roi_and_the_pixel_metrics_do_not(data, server, tmp_path):
    demo = ["--model", MODEL_DIR / "model.pt", "--params-file", MODEL_DIR / "params.yaml"]
    _, shipped, _ = run_eval(server, tmp_path, data, "shipped", *demo)
    shipped_file = yaml.safe_load((MODEL_DIR / "params.yaml").read_text())["/**"]["ros__parameters"]
    assert shipped["mask"]["threshold_source"] == f"--params-file {MODEL_DIR / 'params.yaml'}"
    assert (shipped["mask"]["threshold"], shipped["mask"]["local_contrast"]) == (
        shipped_file["threshold"], shipped_file["local_contrast"])
    # one value thresholded in both regions (the score itself: the local contrast depends on the region)
    plain = [*demo, "--local-contrast", "0", "--threshold", "-0.3186"]
    _, road, road_text = run_eval(server, tmp_path, data, "road", *plain)
    _, whole, _ = run_eval(server, tmp_path, data, "none", *plain, "--roi", "none")
    _, off, off_text = run_eval(server, tmp_path, data, "off", *demo, "--no-mask-metrics")
    for summary in (road, whole):  # the shipped params file's score
        assert summary["mask"]["score"] == "normalized_max_logit" and summary["mask"]["local_contrast"] == 0
    px_road, px_whole = road["mask"]["pixels"], whole["mask"]["pixels"]
    assert px_whole["id_region"] == px_whole["id"] and px_whole["ood_region"] == px_whole["ood"]
    assert whole["mask"]["gt_outside_region"] == 0 and road["mask"]["gt_outside_region"] > 0
    assert 0 < px_road["id_region"] < px_road["id"] == px_whole["id"]
    # the road mask is the whole-picture mask cut to the region: never more flagged pixels
    assert px_road["id_flagged"] <= px_whole["id_flagged"] and px_road["ood_flagged"] <= px_whole["ood_flagged"]
    assert px_road["id_flagged"] < px_whole["id_flagged"]
    # the pixel metrics of the scores are the same with or without the mask, and without it there is no mask part
    assert road["scores"] == whole["scores"] == off["scores"] and road["meta"] == off["meta"]
    assert "mask" not in off and "Obstacle mask" not in off_text and "Obstacle mask" in road_text
    assert off_text == road_text[:road_text.index("\n## Obstacle mask")]


def test_a_threshold_for_another_local_contrast_is_not_used(data, demo_backend, server, tmp_path):
    """A threshold on the contrast means nothing on the score, or on another contrast: the best pixel F1
    then stands in, chosen on what the mask thresholds (the contrast, inside the region)."""
    params = tmp_path / "contrast.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "score": "normalized_max_logit", "threshold": 0.05, "roi": "road", "local_contrast": 0.1}}}))
    demo = ["--model", MODEL_DIR / "model.pt", "--params-file", params]
    result, summary, text = run_eval(server, tmp_path, data, "same", *demo)
    mask = summary["mask"]
    assert (mask["threshold"], mask["local_contrast"]) == (0.05, 0.1) and notes(result) == []
    assert "minus its local mean in the region (sigma 0.1 x the height)" in text

    result, summary, _ = run_eval(server, tmp_path, data, "other", *demo, "--local-contrast", "0.2")
    mask = summary["mask"]
    assert mask["local_contrast"] == 0.2 and mask["threshold_source"] == BEST_F1
    assert notes(result) == [f"note: --params-file {params}: its threshold is for local_contrast 0.1, not 0.2; the "
                             "mask takes the threshold with the best pixel F1 on this dataset (a second pass over it)"]
    neg, pos = [], []
    for score, ids, label in direct_frames(demo_backend, open_dataset("smiyc-obstacle", data), "normalized_max_logit"):
        region = region_of_interest("road", ids, None, 3)
        value = contrast_score(score, region, 0.2)
        neg.append(value[region & (label == 0)])
        pos.append(value[region & (label == 1)])
    best = best_f1_threshold(np.concatenate(neg), np.concatenate(pos))
    assert mask["threshold"] == pytest.approx(best.threshold, rel=1e-5)
