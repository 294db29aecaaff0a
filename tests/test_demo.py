"""The embedded demo end to end: a short generated drive through the real node (own process, DDS) with the
shipped model; every output arrives and the summary's metrics are those of `hypood eval` on the same frames."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hypood_ros.apps.demo import MODEL_DIR
from hypood_ros.apps.demo.recorded import message_array
from ros_harness import random_domain, ros_env

REPO = Path(__file__).resolve().parents[1]


def hypood(*args, domain=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "hypood_ros.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ros_env(domain if domain is not None else random_domain()), cwd=REPO)


def test_shipped_model_loads_safely_and_has_its_numbers():
    from hypood_ros.model import load_checkpoint

    model = load_checkpoint(MODEL_DIR / "model.pt")  # weights_only=True inside
    assert model.metadata["trained"] == {"backbone": True, "decoder": True, "head": True, "uem": True}
    assert (MODEL_DIR / "model.pt").stat().st_size < 8 * 2**20
    metrics = json.loads((MODEL_DIR / "metrics.json").read_text())
    assert 0.0 < metrics["mIoU_heldout"] <= 1.0
    assert set(metrics["ood"]) == {"eval-family", "training-family"}
    import yaml

    params = yaml.safe_load((MODEL_DIR / "params.yaml").read_text())["/**"]["ros__parameters"]
    assert isinstance(params["threshold"], float) and params["score"] == metrics["node_score"]
    # the threshold holds for the input size it was calibrated at, and the demo runs the node at that size
    assert [params["input_height"], params["input_width"]] == metrics["input_size"]

    # an input size chosen by model_card --input-sizes is the training family's best, and is the one shipped
    if metrics.get("input_size_sweep"):
        sweep = metrics["input_size_sweep"]
        assert "x".join(map(str, metrics["input_size"])) == max(sweep, key=sweep.get)


def test_model_card_chooses_the_input_size_on_the_training_family_alone(tmp_path):
    """The input size is picked by the node score's road AP on training-family scenes; the folder here holds no
    evaluation-family scenes at all, so they cannot take part. The chosen size is the one `hypood eval` scores best."""
    import argparse

    from hypood_ros.apps.model_card import choose_input_size, input_size
    from hypood_ros.evaluation.datasets import open_dataset
    from hypood_ros.evaluation.evaluate import evaluate
    from hypood_ros.runtimes import load_backend
    from hypood_ros.synthetic import writers

    for i in range(3):
        f = writers.scene(900000 + i, family="training", anomalies=2)
        f.index = i
        writers.write_smiyc(tmp_path / "training-family", [f], track="ObstacleTrack")
    params = {"eta": 1.5, "lam": 1.0, "delta": 0.0}
    candidates = [(126, 252), (238, 476)]
    best, sweep = choose_input_size(MODEL_DIR / "model.pt", tmp_path, "normalized_max_logit", candidates, params)
    dataset = open_dataset("smiyc-obstacle", tmp_path / "training-family")
    direct = {f"{h}x{w}": evaluate(load_backend(str(MODEL_DIR / "model.pt"), device="cpu", input_hw=(h, w)), dataset,
                                   ["normalized_max_logit"], tmp_path / f"direct{h}", params,
                                   heatmaps=0)["normalized_max_logit"]["AP"] for h, w in candidates}
    assert sweep == pytest.approx(direct) and len(set(sweep.values())) == 2
    assert best == max(candidates, key=lambda hw: direct[f"{hw[0]}x{hw[1]}"])
    assert input_size("280x560") == (280, 560)
    for bad in ("280x561", "280", "0x14", "axb"):
        with pytest.raises(argparse.ArgumentTypeError):
            input_size(bad)


def test_output_messages_decode():
    from hypood_ros.bags import typestore

    ts = typestore()
    Image, Header, Time = (ts.types[n] for n in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                 "builtin_interfaces/msg/Time"))
    header = Header(stamp=Time(sec=1, nanosec=2), frame_id="cam")
    score = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5
    for big in (0, 1):
        data = score.astype(">f4" if big else "<f4").tobytes()
        msg = Image(header=header, height=3, width=4, encoding="32FC1", is_bigendian=big, step=16,
                    data=np.frombuffer(data, np.uint8))
        np.testing.assert_array_equal(message_array(msg), score)
    padded = np.zeros((3, 6), np.uint8)
    padded[:, :4] = [[1, 2, 3, 4]] * 3
    msg = Image(header=header, height=3, width=4, encoding="mono8", is_bigendian=0, step=6, data=padded.reshape(-1))
    np.testing.assert_array_equal(message_array(msg), padded[:, :4])


@pytest.mark.ros
@pytest.mark.slow
def test_short_demo_through_the_node_matches_the_evaluator(tmp_path):
    from rosbags.highlevel import AnyReader

    from hypood_ros.bags import typestore
    from hypood_ros.replay.replayer import OUTPUT_TOPICS

    out = tmp_path / "demo_out"
    frames = 8
    run = hypood("demo", "--out", out, "--frames", frames, "--seed", 500_001, "--no-progress")
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    replay = summary["replay"]
    assert replay["sent"] == frames and replay["dropped"] == 0
    assert replay["answered"]["ood/mask"] == frames
    # Every output arrives. (The node's reliable outputs keep a history of 2: on a loaded machine a sample that
    # needs a retransmission can still be overwritten, so one lost message per topic is tolerated here.)
    assert all(replay["answered"][name] >= frames - 1 for name in OUTPUT_TOPICS), replay["answered"]
    assert replay["complete_frames"] >= frames - 1
    assert replay["latency_ms"]["p50"] > 0 and replay["throughput_fps"] > 0
    for key, path in summary["files"].items():
        assert Path(path).exists(), key
    assert {"pr_smiyc-anomaly", "roc_smiyc-anomaly", "pr_smiyc-obstacle", "roc_smiyc-obstacle"} <= set(summary["files"])
    # the bag's camera_info went out beside the frames, so the obstacle outputs came too and were recorded
    assert replay["camera_info"] == "/front/camera_info"
    assert all(n >= frames - 1 for n in replay["obstacle_outputs"].values()), replay["obstacle_outputs"]
    with AnyReader([Path(summary["files"]["output_bag"])], default_typestore=typestore()) as reader:
        counts = {}
        for conn, _, _ in reader.messages():
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
    assert counts == {**{"/" + name: replay["answered"][name] for name in OUTPUT_TOPICS},
                      **{"/" + name: n for name, n in replay["obstacle_outputs"].items()}}
    assert 0.0 <= summary["segmentation"]["mIoU"] <= 1.0
    for track in ("smiyc-anomaly", "smiyc-obstacle"):
        comparisons = summary["comparisons"][track]
        assert set(comparisons["energy_family"]) == {"energy", "normalized_energy", "weighted_normalized_energy"}
        assert set(comparisons["llr"]) == {"uem_llr", "hyperspherical_llr"}
    assert "best (road only):" in run.stdout and "contact_sheet.png" in run.stdout
    check_obstacles(summary, run.stdout)

    # the same frames through `hypood eval`: identical numbers, on both layouts
    ev = summary["evaluation"]
    for track in ("smiyc-anomaly", "smiyc-obstacle"):
        check = hypood("eval", "--dataset", track, "--root", ev["root"], "--model", summary["model"],
                       "--height", ev["input_size"][0], "--width", ev["input_size"][1], "--eta", ev["params"]["eta"],
                       "--lam", ev["params"]["lam"], "--delta", ev["params"]["delta"], "--heatmaps", 0,
                       "--out", tmp_path / track)
        assert check.returncode == 0, check.stderr[-2000:]
        results = json.loads((tmp_path / track / "results.json").read_text())
        assert summary["scores"][track] == results["scores"]
        assert results["meta"]["images"] == summary["drive"]["anomaly_frames"]


def check_obstacles(summary, stdout):
    """The obstacle part of a demo summary: consistent with itself, with the generated drive and with the
    recorded ood/markers."""
    from hypood_ros.apps.demo.recorded import recorded_obstacles
    from hypood_ros.images import read_image
    from hypood_ros.synthetic import writers

    drive = summary["drive"]
    generated = {f.index: f for f in writers.drive(drive["seed"], drive["frames"], drive["fps"], drive["speed_mps"],
                                                   "evaluation", drive["anomalies"], drive["size"])}
    camera_height = generated[0].camera_height
    assert summary["node_output"]["pose"]["camera_height"] == camera_height == drive["camera_height_m"]
    assert summary["node_output"]["pose"]["pose_source"] == "parameters"
    o = summary["obstacles"]
    rows = [row for frame in o["per_frame"] for row in frame["obstacles"]]
    measured = [frame["index"] for frame in o["per_frame"]]
    assert len(measured) == o["frames"] >= drive["anomaly_frames"] - 1 and o["frames_without_markers"] <= 1
    # every generated obstacle in view (the obstacle track's smallest ground truth: 10 pixels) is found or missed
    in_view = {(i, a.id): a for i in measured for a in generated[i].anomalies if a.pixels >= 10}
    assert o["in_view"] == len(rows) == len(in_view) > 0
    assert o["found"] + o["missed"] == o["in_view"] and o["found"] == sum(row["found"] for row in rows)
    assert sum(b["found"] + b["missed"] for b in o["bands"].values()) == o["in_view"]
    assert sum(b["found"] for b in o["bands"].values()) == o["found"]
    for frame in o["per_frame"]:
        for row in frame["obstacles"]:
            truth = in_view[frame["index"], row["id"]]
            assert row["true_range"] == truth.range and row["found"] == (row["siou"] >= o["found_siou"])
            if row["range_error"] is not None:  # range errors only for found obstacles with a report
                assert row["found"] and row["range_error"] == row["reported_range"] - row["true_range"]
            if row["reported_range_error"] is not None:
                assert row["reported_range_error"] == row["reported_range"] - row["true_range"]
        assert 0 <= frame["false_obstacles"] <= frame["reported"]
    ranged = [row for row in rows if row["range_error"] is not None]
    assert o["range_error"]["obstacles"] == len(ranged) <= o["found"]
    reported = [row for row in rows if row["reported_range_error"] is not None]
    assert len(ranged) <= o["range_error_any_report"]["obstacles"] == len(reported)
    if ranged:
        assert 0 <= o["range_error"]["abs_m"]["median"] <= o["range_error"]["abs_m"]["p90"]
    false = o["false_obstacles"]
    assert false["total"] == sum(frame["false_obstacles"] for frame in o["per_frame"]) >= 0
    # what the node reported is what the recorded ood/markers hold
    reports = recorded_obstacles(Path(summary["files"]["output_bag"]))
    assert false["reported"] == sum(frame["reported"] for frame in o["per_frame"])
    for frame in o["per_frame"]:
        assert frame["reported"] == len(reports[generated[frame["index"]].stamp_ns])
    for track in ("smiyc-obstacle", "smiyc-anomaly"):
        c = o["components"][track]
        assert c["frames"] == o["frames"] + o["frames_without_markers"] and 0.0 <= c["F1_mean"] <= 1.0
        assert all(c[k] is None or 0.0 <= c[k] <= 1.0 for k in ("sIoU_gt", "PPV", "sIoU_pred"))
    region = o["region"]
    assert region["roi"] == summary["node_output"]["mask_settings"]["roi"]
    assert 0.0 <= region["mask_recall"] <= 1.0 and 0.0 <= region["mask_false_positive_rate"] <= 1.0
    assert f"{o['found']}/{o['in_view']} found" in stdout and "component metrics, road only:" in stdout
    sheet = read_image(summary["files"]["contact_sheet"])
    assert sheet.shape[1] == 5 * drive["size"][1]  # camera, semantic map, score, overlay, obstacles


def test_a_new_model_card_keeps_the_hand_written_notes(tmp_path):
    from hypood_ros.apps.model_card import NOTES, kept_notes

    readme = tmp_path / "README.md"
    assert kept_notes(readme) == ""  # no earlier card
    readme.write_text("# Demo model\n\n| numbers |\n")
    assert kept_notes(readme) == ""  # an earlier card without notes
    readme.write_text(f"# Demo model\n\n| old numbers |\n\n{NOTES}\n\nTrained on two cores.\n\n### More\n\ntext\n")
    assert kept_notes(readme) == f"\n{NOTES}\n\nTrained on two cores.\n\n### More\n\ntext\n"
