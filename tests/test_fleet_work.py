"""The per-bag work of `hypood fleet` without Ray, and the merges that sum its results over bags."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hypood_ros.evaluation.components import ComponentTally, instances, segment_metrics
from hypood_ros.evaluation.metrics import PixelSample
from hypood_ros.fleet.work import ModelSpec, Options, components, mask_iou, plan_jobs, run_sequential, unmatched

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "demo" / "model.pt"


def test_pixel_samples_merge_to_the_sample_of_all_pixels():
    rng = np.random.default_rng(1)
    parts = [(rng.normal(size=500).astype(np.float32), (rng.random(500) < 0.2).astype(np.uint8)) for _ in range(3)]
    whole, merged = PixelSample(), PixelSample()
    for i, (s, y) in enumerate(parts):
        whole.add(s, y)
        one = PixelSample(seed=i)
        one.add(s, y)
        merged.merge(one)
    assert merged.metrics() == pytest.approx(whole.metrics(), abs=1e-12)  # exact: under capacity
    small = PixelSample(capacity=200)
    for i, (s, y) in enumerate(parts):
        one = PixelSample(capacity=200, seed=i)
        one.add(s, y)
        small.merge(one)
    assert small.seen == whole.seen and small.values[False].size == small.values[True].size == 100


def test_component_tallies_merge_to_the_tally_of_all_frames():
    rng = np.random.default_rng(2)
    frames = []
    for _ in range(4):
        label = np.zeros((40, 40), np.uint8)
        label[5:15, 5:15] = 1
        mask = (rng.random((40, 40)) < 0.02).astype(np.uint8)
        mask[6:14, 6:16] = 1
        frames.append(segment_metrics(*instances(mask, label)))
    whole, a, b = ComponentTally(), ComponentTally(), ComponentTally()
    for i, f in enumerate(frames):
        whole.add(f)
        (a if i < 2 else b).add(f)
    a.merge(b)
    assert a.summary() == whole.summary()


def test_mask_comparison():
    a = np.zeros((20, 20), np.uint8)
    b = a.copy()
    assert mask_iou(a, b) == 1.0
    a[2:5, 2:5] = 255  # only in a: gained
    a[10:14, 10:14] = 255
    b[12:16, 12:16] = 255  # overlaps a's second component
    b[17:19, 0:3] = 255  # only in b: lost
    ids_a, ids_b = components(a), components(b)
    assert unmatched(*ids_a, b) == 1 and unmatched(*ids_b, a) == 1
    assert mask_iou(a, b) == pytest.approx(4 / (9 + 16 + 16 - 4 + 6))


def test_one_bag_alone_every_nth_frame_and_a_bag_gone_after_planning(tmp_path):
    import shutil

    from hypood_ros.synthetic import writers

    for name in ("drive", "gone"):
        writers.write_bag(tmp_path / name, writers.drive(7, 5, size=(96, 192)), labels=name == "drive")
    params = tmp_path / "params.yaml"
    text = (REPO / "models" / "demo" / "params.yaml").read_text()
    params.write_text(text.replace("input_height: 280", "input_height: 56").replace("input_width: 560",
                                                                                     "input_width: 112"))
    options = Options(ModelSpec(str(MODEL), (str(params),)), every=2)
    jobs, failures = plan_jobs([str(tmp_path / "drive"), str(tmp_path / "gone")], "auto", options)
    assert not failures and [j.frames for j in jobs] == [3, 3]
    shutil.rmtree(tmp_path / "gone")  # unmounted or deleted while the fleet runs: reported, the others go on
    results = run_sequential(jobs, options)
    records, result, error = results[jobs[0].key]
    assert error is None and [r["frame"] for r in records] == [0, 2, 4] and result["truth_frames"] == 3
    assert all(r["id_px"] > 0 and r["ood_flagged"] <= r["ood_px"] for r in records)
    records, result, error = results[jobs[1].key]
    assert records == [] and result is None and "gone" in error and "\n" not in error
