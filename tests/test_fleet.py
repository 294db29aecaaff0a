"""`hypood fleet` on a local Ray with 2 CPUs: generated bags (one with ground truth, one corrupt), the shipped
demo model; Ray's results against the plain sequential loop, resume, a killed worker, a baseline of itself."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray (the fleet extra) not installed")

from hypood_ros.fleet.engine import EngineSettings, run_fleet, worker_error  # noqa: E402
from hypood_ros.fleet.report import FleetOutput, read_csv, truth_metrics, write_csv  # noqa: E402
from hypood_ros.fleet.work import ModelSpec, Options, plan_jobs, run_sequential  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "demo" / "model.pt"
FRAMES = 4


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """Three generated drives (the first with its ood_label ground truth) and a truncated copy of one."""
    from hypood_ros.synthetic import writers

    root = tmp_path_factory.mktemp("bags")
    for i in range(3):
        writers.write_bag(root / f"drive{i}", writers.drive(20 + i, FRAMES, size=(96, 192)), labels=i == 0)
    data = (root / "drive0" / "drive0.mcap").read_bytes()
    (root / "corrupt.mcap").write_bytes(data[: len(data) // 3])
    return root


@pytest.fixture(scope="module")
def params(tmp_path_factory):
    """The demo model's params at a small network input (fast on 2 cores)."""
    text = (REPO / "models" / "demo" / "params.yaml").read_text()
    text = text.replace("input_height: 280", "input_height: 112").replace("input_width: 560", "input_width: 224")
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _bag_paths(root):
    return [str(root / "drive0"), str(root / "drive1"), str(root / "drive2"), str(root / "corrupt.mcap")]


def _options(params, baseline=True, **kw):
    spec = ModelSpec(str(MODEL), (params,))
    return Options(spec, spec if baseline else None, **kw)


def _as_written(records, tmp_path):
    """Records through the same CSV the engine writes (floats as CSV writes them)."""
    path = tmp_path / "sequential.csv"
    write_csv(path, records)
    return read_csv(path)


@pytest.mark.slow  # a local Ray starts (about 20 s) and runs bags: kept out of `make test-fast`
def test_ray_equals_sequential_loop_and_baseline_of_itself(bags, params, local_ray, tmp_path):
    options = _options(params)
    jobs, failures = plan_jobs(_bag_paths(bags), "auto", options)
    assert [Path(j.bag).name for j in jobs] == ["drive0", "drive1", "drive2"]
    assert [j.labels is not None for j in jobs] == [True, False, False]  # the label topic is not an image job
    assert len(failures) == 1 and "corrupt.mcap" in failures[0][1]

    out = FleetOutput(tmp_path / "out")
    run = run_fleet(jobs, failures, options, out, EngineSettings(workers=2))
    assert run.workers == 2 and run.processed_frames == 3 * FRAMES and not run.interrupted
    assert [Path(b).name for b, _ in run.failures] == ["corrupt.mcap"]

    reference = run_sequential(jobs, options)
    for job in jobs:
        summary = out.finished(job)
        assert summary is not None and summary["frames"] == FRAMES
        records, result, error = reference[job.key]
        assert error is None
        got = out.records(summary)
        assert [r["frame"] for r in got] == list(range(FRAMES))  # each frame once, in order
        assert got == _as_written(records, tmp_path)  # same numbers, frame for frame
        # a baseline of the model itself: the same mask everywhere
        assert all(r["iou"] == 1.0 and r["gained"] == 0 and r["lost"] == 0 for r in got)
        assert summary["comparison"]["gained"] == summary["comparison"]["lost"] == 0
        if job.labels:
            expected = truth_metrics(result["truth"]["model"])
            assert summary["truth"]["model"]["AP"] == pytest.approx(expected["AP"], abs=0)
            assert summary["truth"]["model"]["mask"] == expected["mask"]
            assert summary["truth"]["baseline"]["AP"] == summary["truth"]["model"]["AP"]
            assert 0 < summary["truth"]["model"]["AP"] < 1
        assert summary["camera"] and summary["model"]["obstacles_per_frame"] is not None

    report = out.write_report(run.summaries, run.failures, {
        "model": str(MODEL), "baseline": str(MODEL), "every": 1, "workers": run.workers, "nodes": run.nodes,
        "skipped_bags": 0, "frames_per_s": 1.0, "seconds": run.seconds, "top_k": 3})
    assert report["total"]["frames"] == 3 * FRAMES and report["total"]["comparison"]["iou"]["min"] == 1.0
    assert report["total"]["top"] == []  # nothing to look at: the two masks never differ
    assert report["total"]["truth"]["model"]["AP"] == summary_ap(out, jobs[0])  # one bag with ground truth
    text = (tmp_path / "out" / "report.md").read_text()
    assert "corrupt.mcap" in text and "## Against the ground truth" in text
    assert len(read_csv(tmp_path / "out" / "frames.csv")) == 3 * FRAMES
    for plot in ["flagged_share.png", "iou.png", "class_shares.png", "obstacles.png"]:
        assert (tmp_path / "out" / "plots" / plot).stat().st_size > 0


def summary_ap(out, job):
    return out.finished(job)["truth"]["model"]["AP"]


@pytest.mark.slow
def test_resume_skips_finished_bags_and_force_redoes_them(bags, params, local_ray, tmp_path):
    options = _options(params, baseline=False)
    jobs, failures = plan_jobs(_bag_paths(bags)[1:3], "/front/image_raw", options)
    out = FleetOutput(tmp_path / "out")
    first = run_fleet(jobs, failures, options, out, EngineSettings(workers=2))
    assert first.processed_frames == 2 * FRAMES and first.skipped == 0
    again = run_fleet(jobs, failures, options, out, EngineSettings(workers=2))
    assert again.skipped == 2 and again.processed_frames == 0 and len(again.summaries) == 2
    forced = run_fleet(jobs, failures, options, out, EngineSettings(workers=2, force=True))
    assert forced.skipped == 0 and forced.processed_frames == 2 * FRAMES
    # other options are another key: every 2nd frame redoes both bags
    other = _options(params, baseline=False, every=2)
    jobs2, _ = plan_jobs(_bag_paths(bags)[1:3], "/front/image_raw", other)
    assert {j.key for j in jobs2}.isdisjoint(j.key for j in jobs)
    changed = run_fleet(jobs2, [], other, out, EngineSettings(workers=2))
    assert changed.skipped == 0 and changed.processed_frames == 2 * (FRAMES // 2)


@pytest.mark.slow
def test_killed_worker_is_retried_and_no_frame_counts_twice(bags, params, local_ray, tmp_path):
    """The worker process is killed (SIGKILL) after its first frame: Ray restarts it, retries the bag, and the
    bag's records are still each frame once, equal to the sequential loop."""
    options = _options(params, baseline=False)
    jobs, _ = plan_jobs([str(bags / "drive1")], "/front/image_raw", options)
    killed = []

    def kill_once(job, kind, where):
        if kind == "frame" and not killed:
            killed.append(where["pid"])
            os.kill(where["pid"], signal.SIGKILL)

    out = FleetOutput(tmp_path / "out")
    run = run_fleet(jobs, [], options, out, EngineSettings(workers=1, retries=2), observe=kill_once)
    assert killed and not run.failures
    summary = out.finished(jobs[0])
    pids = {w["pid"] for w in summary["workers"]}
    assert killed[0] in pids and len(pids) == 2  # the first attempt's worker and its replacement
    got = out.records(summary)
    assert [r["frame"] for r in got] == list(range(FRAMES))
    records, _, _ = run_sequential(jobs, options)[jobs[0].key]
    assert got == _as_written(records, tmp_path)


def test_worker_error_names_the_worker_and_out_of_memory():
    from hypood_ros.fleet.work import BagJob

    job = BagJob("/data/a.mcap", "/front/image_raw", 10, "k" * 64, "a")
    oom = ray.exceptions.OutOfMemoryError("Task was killed due to the node running low on memory. "
                                          "Worker PID: 4242 Worker IP address: 10.0.0.7")
    text = worker_error(oom, job, None)
    assert "pid 4242" in text and "10.0.0.7" in text and "out of memory" in text and "/data/a.mcap" in text
    died = ray.exceptions.ActorDiedError()
    text = worker_error(died, job, {"pid": 7, "node": "10.0.0.8"})
    assert "pid 7 on node 10.0.0.8 died" in text and "\n" not in text


def test_cli_refuses_bad_input_in_one_line(bags, params, tmp_path):
    from hypood_ros.cli import main

    def run(*argv, capsys=None):
        return main(["fleet", *argv])

    assert run(str(tmp_path / "none"), "--model", str(MODEL), "--out", str(tmp_path / "o")) == 2
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert run(str(bags / "drive0"), "--model", str(MODEL), "--out", str(busy)) == 2
    assert run(str(bags / "drive0"), "--model", str(MODEL), "--out", str(tmp_path / "o"),
               "--baseline-params-file", params) == 2
    assert run(str(bags / "drive0"), "--model", str(MODEL), "--out", str(tmp_path / "o"), "--device", "cuda") == 2


def test_bag_arguments_expand_folders_globs_and_manifests(bags, tmp_path):
    import argparse

    from hypood_ros.cli.fleet import bag_list

    manifest = tmp_path / "list.txt"
    manifest.write_text(f"# drives\n{bags / 'drive1'}\n{bags}/drive2  # again below\n")
    args = argparse.Namespace(bags=[str(bags), str(bags / "drive*")], manifest=[str(manifest)])
    names = [Path(b).name for b in bag_list(args)]
    assert names == ["corrupt.mcap", "drive0", "drive1", "drive2"]  # each once


@pytest.mark.slow
def test_ctrl_c_keeps_finished_bags_and_a_rerun_resumes(bags, params, tmp_path):
    """SIGINT while the second of two bags runs (one worker): exit 130, the first bag's results stay, and the
    next run skips it. Both bags are long (a few seconds each), so whichever runs second is still running when
    the interrupt comes after the first one's results appear, on any machine."""
    out = tmp_path / "out"
    many = tmp_path / "many"
    many.mkdir()
    from hypood_ros.synthetic import writers

    for seed, name in ((30, "long_a"), (31, "long_b")):
        writers.write_bag(many / name, writers.drive(seed, 160, size=(96, 192)))
    cmd = [sys.executable, "-m", "hypood_ros.cli", "fleet", str(many / "long_a"), str(many / "long_b"), "--model",
           str(MODEL), "--params-file", params, "--out", str(out), "--workers", "1"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # SIGINT as at a terminal: a suite started in the background inherits it ignored, and Python then keeps it so
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((out / "bags").glob("*/result.json")):
        time.sleep(0.2)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    done = [p.parent.name for p in (out / "bags").glob("*/result.json")]
    assert len(done) == 1 and done[0].startswith("long_"), output
    assert "Interrupted" in (out / "report.md").read_text()
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "(1 already done)" in again.stdout and "160 frames processed now" in again.stdout


def test_generated_bag_carries_its_ground_truth(bags):
    from hypood_ros.bags import read_messages, topic_counts
    from hypood_ros.conversion import image_to_rgb
    from hypood_ros.synthetic import writers

    topics = topic_counts(bags / "drive0")
    assert topics["/front/ood_label"] == ("sensor_msgs/msg/Image", FRAMES)
    assert "/front/ood_label" not in topic_counts(bags / "drive1")
    frames = list(writers.drive(20, FRAMES, size=(96, 192)))
    for frame, message in zip(frames, read_messages(bags / "drive0", "/front/ood_label")):
        m = message.msg
        assert m.encoding == "mono8"
        label = image_to_rgb(m.height, m.width, m.encoding, m.step, m.data, m.is_bigendian)[:, :, 0]
        np.testing.assert_array_equal(label, frame.ood_label)
