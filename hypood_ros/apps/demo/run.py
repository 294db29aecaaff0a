"""The demo's four stages: generate a drive, replay it through the node in its own process, measure what the
node published, and run every score through the project's evaluator; `summary.json` holds it all."""
from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from pathlib import Path
from typing import Callable, Dict

import numpy as np

from hypood_ros import topics
from hypood_ros.apps.demo.measure import ObstacleMeasure
from hypood_ros.apps.demo.pictures import _pick_rows, contact_sheet, obstacle_picture, write_gif
from hypood_ros.apps.demo.recorded import recorded_obstacles, recorded_outputs
from hypood_ros.apps.demo.settings import (
    BASE_FRAME,
    COMPARISONS,
    MASK_PARAMS,
    MODEL_DIR,
    TOPIC,
    TRACKS,
    DemoSettings,
    T,
    node_params,
    remove_products,
)
from hypood_ros.defaults import default
from hypood_ros.errors import ConfigError, HypoodError


def run_demo(s: DemoSettings, progress: Callable, log: Callable[[str], None]) -> dict:
    """`progress(total=, desc=, unit=, leave=)`: a tqdm-like bar factory; `log`: a line that does not break a bar
    (the node's warnings come mid-replay)."""
    from hypood_ros.bags import RecorderThread
    from hypood_ros.dds import AUTO, profile_env, resolve_profile, use_profile
    from hypood_ros.evaluation.datasets import open_dataset
    from hypood_ros.evaluation.evaluate import evaluate, select_scores
    from hypood_ros.evaluation.metrics import PixelSample
    from hypood_ros.evaluation.segmentation import confusion, miou
    from hypood_ros.replay.replayer import NodeLauncher, Replayer, node_arguments
    from hypood_ros.runtimes import load_backend
    from hypood_ros.synthetic import writers
    from hypood_ros.visualize import heat_map

    started = time.monotonic()
    stages: Dict[str, float] = {}

    def lap(name: str) -> None:
        stages[name] = round(time.monotonic() - started - sum(stages.values()), 2)
    if Path(s.model).is_dir():
        raise ConfigError(f"model {s.model} is a folder; it must be a checkpoint file, such as "
                          f"{Path(s.model) / 'model.pt'} (the shipped one is {MODEL_DIR / 'model.pt'})")
    if not Path(s.model).is_file():
        raise ConfigError(f"model not found: {s.model} (the shipped one is {MODEL_DIR / 'model.pt'})")
    params = node_params(s.params)
    if s.input_size is None:
        s = dataclasses.replace(s, input_size=(int(params.get("input_height", s.size[0] // 14 * 14)),
                                               int(params.get("input_width", s.size[1] // 14 * 14))))
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    remove_products(out)

    log(f"[1/4] generating a {s.frames}-frame drive (street {s.seed}, {s.size[1]}x{s.size[0]}, {s.fps:g} Hz) with "
        f"{s.anomalies} evaluation-family anomalies on the road")
    with progress(total=s.frames, desc="generate", unit="frame", leave=False) as bar:
        frames = []
        for f in writers.drive(s.seed, s.frames, s.fps, s.speed, "evaluation", s.anomalies, s.size):
            frames.append(f)
            bar.update(1)
    writers.write_bag(out / "drive", frames, TOPIC, labels=True)  # the ground truth too, for `hypood fleet`
    anomaly_names = writers.write_smiyc(out / "anomaly_frames", frames)
    writers.write_smiyc(out / "anomaly_frames", frames, track="ObstacleTrack")
    anomaly_idx = [f.index for f in frames if f.ood.any()]
    if not anomaly_idx:
        raise HypoodError("the generated drive has no anomaly in view; use more frames")

    lap("generate")
    log(f"[2/4] starting hypood_node ({Path(s.model).name}) in its own process and replaying the bag over DDS")
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid() ^ time.time_ns()).randint(10, 200)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    # The node answers each frame with about 1.4 MB of images, more than Fast DDS's default shared-memory
    # segment: without the shipped profile reliable samples wait for a retransmission (seconds per stall).
    profile = resolve_profile(AUTO)
    use_profile(profile)  # before this process's first DDS participant
    # the bag's camera_info goes out beside each frame; with the generated camera's pose (pitch 0, above the
    # point of the road that is base_frame's origin) the node places the obstacles on the road
    replayer = Replayer(out / "drive", TOPIC, rate=s.rate or 1.0, max_speed=s.rate is None, frame_timeout=30.0,
                        camera_info="auto")
    pose = {"pose_source": "parameters", "base_frame": BASE_FRAME, "camera_height": frames[0].camera_height,
            "camera_pitch": 0.0, "camera_roll": 0.0, "camera_yaw": 0.0, "camera_x": 0.0, "camera_y": 0.0}
    # the car's own bonnet, where the street has one: what a vehicle's ego mask is (the generator knows it)
    from hypood_ros.synthetic.canvas import VOID

    ego = (frames[0].label == VOID) & ~frames[0].ood
    if ego.any():
        from hypood_ros.images import write_image

        write_image(out / "ego_mask.png", ego.astype(np.uint8) * np.uint8(255))
        pose["ego_mask"] = str(out / "ego_mask.png")
    else:
        ego = None
    extra = ["-p", f"input_height:={s.input_size[0]}", "-p", f"input_width:={s.input_size[1]}"]
    for name, value in pose.items():
        extra += ["-p", f"{name}:={value!r}" if isinstance(value, float) else f"{name}:={value}"]
    launcher = NodeLauncher(node_arguments(str(s.model), TOPIC, False, params_file=s.params, extra=extra,
                                           qos=replayer.qos,  # the node subscribes as the replay publishes
                                           camera_info=replayer.publish_info_topic),
                            env=profile_env(profile, dict(os.environ, PYTHONUNBUFFERED="1")), echo=log)
    recorder = None
    ok = False
    try:
        launcher.wait_ready()
        recorder = RecorderThread(out / "outputs", "mcap")
        with progress(total=s.frames, desc="replay", unit="frame", leave=False) as bar:
            summary = replayer.run(recorder, bar)
        ok = True
    finally:
        if recorder is not None:
            record = recorder.close(success=ok)
        code = launcher.stop()
    if not ok:
        raise HypoodError("replay failed; node output:\n" + "\n".join(launcher.lines[-10:]))
    ready = launcher.ready_line or ""
    for line in summary.lines():
        log("      " + line)

    lap("node_and_replay")
    log("[3/4] reading the recorded outputs: pictures, mIoU, the node's mask, score and obstacles")
    outputs = recorded_outputs(record)
    measure = ObstacleMeasure(frames[0], params, recorded_obstacles(record), ego)
    by_stamp = {f.stamp_ns: f for f in frames}
    matrix = np.zeros((19, 19), np.int64)
    node_sample = PixelSample()
    mask_hits = np.zeros(2, np.int64)  # OOD pixels flagged, OOD pixels
    id_flagged = np.zeros(2, np.int64)  # ID pixels flagged, ID pixels
    gif, rows, complete = [], {}, 0
    picks = set(_pick_rows(anomaly_idx, len(frames), s.sheet_rows))
    for stamp, f in sorted(by_stamp.items()):
        if any(stamp not in got for got in outputs.values()):
            continue  # a frame the node did not answer on every output (counted in the replay summary)
        complete += 1
        labels, score = outputs[T["labels"]][stamp], outputs[T["score"]][stamp]
        mask = outputs[T["mask"]][stamp] > 0
        matrix += confusion(labels.astype(np.int64), f.label, 19)
        gt = f.ood_label
        mask_hits += [int((mask & (gt == 1)).sum()), int((gt == 1).sum())]
        id_flagged += [int((mask & (gt == 0)).sum()), int((gt == 0).sum())]
        missed = []
        if f.ood.any():
            node_sample.add(score, gt)
            missed = measure.add(f, stamp, mask, labels)
        gif.append(outputs[T["overlay"]].get(stamp, f.rgb))
        if f.index in picks:
            rows[f.index] = {"index": f.index, "camera": f.rgb, "color": outputs[T["color"]][stamp],
                             "heat": heat_map(score), "overlay": outputs[T["overlay"]][stamp],
                             "obstacles": obstacle_picture(f.rgb, measure.camera, measure.pose,
                                                           measure.reports.get(stamp, []), missed)}
    contact_sheet([rows[i] for i in sorted(rows)], out / "contact_sheet.png")
    write_gif(gif, out / "overlay.gif", s.fps)
    miou_value, ious = miou(matrix)

    lap("pictures_and_node_metrics")
    log(f"[4/4] every score on the {len(anomaly_names)} anomaly frames with the project's evaluator")
    backend = load_backend(str(s.model), device="cpu", input_hw=tuple(s.input_size))
    eval_params = {name: float(params.get(name, default(name))) for name in ("eta", "lam", "delta")}
    names = select_scores("all", False)
    scores = {}
    for track in TRACKS:
        dataset = open_dataset(track, out / "anomaly_frames")
        with progress(total=len(dataset.samples), desc=f"evaluate {track}", unit="frame", leave=False) as bar:
            scores[track] = evaluate(backend, dataset, names, out / "eval" / track, eval_params, heatmaps=0,
                                     progress=bar)
    backend.close()
    lap("evaluator")

    lat = np.asarray(summary.latencies) * 1e3
    answered = summary.answered.get(topics.PRIMARY, 0)
    best = {track: max(scores[track], key=lambda n: scores[track][n]["AP"]) for track in TRACKS}
    from hypood_ros.visualize import CLASS_NAMES

    result = {
        "note": "generated scenes and a small model trained on them: a demonstration of the pipeline, "
                "not the paper's numbers",
        "model": str(s.model), "params": str(s.params) if s.params else None, "node": ready.split("ready: ", 1)[-1],
        "dds_profile": str(profile) if profile else None,
        "drive": {"seed": s.seed, "frames": s.frames, "fps": s.fps, "speed_mps": s.speed, "size": list(s.size),
                  "anomaly_family": "evaluation", "anomalies": s.anomalies, "anomaly_frames": len(anomaly_idx),
                  "camera_height_m": frames[0].camera_height, "horizon": frames[0].horizon},
        "replay": {"sent": summary.sent, "answered": summary.answered, "dropped": summary.dropped,
                   "complete_frames": complete,
                   "mode": "max-speed" if s.rate is None else f"rate {s.rate:g}",
                   "camera_info": summary.camera_info,
                   "obstacle_outputs": {name: summary.geometry.get(name, 0)
                                        for name in topics.OBSTACLE_OUTPUTS.values()},
                   "throughput_fps": answered / summary.duration if summary.duration > 0 else 0.0,
                   "latency_ms": {"p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
                                  "p99": float(np.percentile(lat, 99)), "max": float(lat.max())}
                   if lat.size else None, "node_exit_code": code},
        "segmentation": {"mIoU": miou_value, "iou": {CLASS_NAMES[k]: (None if np.isnan(v) else float(v))
                                                     for k, v in enumerate(ious)},
                         "source": "node's semantic/labels vs generated train ids, all frames"},
        "node_output": {"score": measure.settings["score"], "threshold": measure.settings["threshold"],
                        "mask_settings": {n: measure.settings[n] for n in MASK_PARAMS[2:]},
                        "pose": pose,
                        "metrics": node_sample.metrics() if node_sample.seen[True] else None,
                        "mask_recall": float(mask_hits[0] / max(mask_hits[1], 1)),
                        "mask_false_positive_rate": float(id_flagged[0] / max(id_flagged[1], 1)),
                        "source": "recorded ood/score and ood/mask on the anomaly frames"},
        "obstacles": measure.summary(),
        "scores": scores,
        "evaluation": {"tracks": {"smiyc-anomaly": "the whole picture is scored (void: the ego vehicle)",
                                  "smiyc-obstacle": "only the road and the obstacles on it are scored"},
                       "root": str(out / "anomaly_frames"), "params": eval_params, "input_size": list(s.input_size),
                       "same_as": f"hypood eval --dataset TRACK --root {out / 'anomaly_frames'} --model "
                                  f"{s.model} --height {s.input_size[0]} --width {s.input_size[1]} --eta "
                                  f"{eval_params['eta']} --lam {eval_params['lam']} --delta {eval_params['delta']}"
                                  " --out EVAL"},
        "comparisons": {track: {group: {n: scores[track][n]["AP"] for n in members}
                                for group, members in COMPARISONS.items()} for track in TRACKS},
        "best_score": {track: {"name": best[track], "AP": scores[track][best[track]]["AP"],
                               "msp_AP": scores[track]["msp"]["AP"],
                               "beats_msp": scores[track][best[track]]["AP"] > scores[track]["msp"]["AP"]}
                       for track in TRACKS},
        "files": {"contact_sheet": str(out / "contact_sheet.png"), "overlay_gif": str(out / "overlay.gif"),
                  "input_bag": str(out / "drive"), "output_bag": str(record),
                  **{f"{kind}_{track}": str(out / "eval" / track / f"{kind}.png") for track in TRACKS
                     for kind in ("pr", "roc")},
                  **{f"table_{track}": str(out / "eval" / track / "results.md") for track in TRACKS}},
        "seconds": time.monotonic() - started, "stage_seconds": stages,
    }
    (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
