"""The embedded demo (`make demo`, `hypood demo`): a generated drive through the real node, and what it saw.

1. generate a drive with evaluation-family anomalies (never used in training) -> MCAP bag + SMIYC layout;
2. start `hypood_node` in its own process with the shipped demo model, replay the bag to it over DDS and
   record its outputs (`hypood_ros.node.replay`);
3. from the recorded outputs: contact sheet, animated overlay, mIoU of the node's semantic map and the
   metrics of the score the node published; every score of the registry on the anomaly frames through
   the project's evaluator (the numbers `hypood eval --dataset smiyc-anomaly` gives on `anomaly_frames/`),
   PR and ROC curves; all of it in `summary.json` and a printed table.

Generated scenes and a small model: a demonstration of the pipeline, not a claim about real-world accuracy.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from hypood_ros import topics
from hypood_ros.defaults import default
from hypood_ros.errors import ConfigError, HypoodError

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "models" / "demo"
TOPIC = "/front/image_raw"
T = topics.IMAGE_OUTPUTS  # the node's image outputs by name
#: Outputs of the demo folder that a new run replaces.
PRODUCTS = ("drive", "outputs", "anomaly_frames", "eval", "contact_sheet.png", "overlay.gif", "summary.json")
#: Evaluator layouts of the anomaly frames: the whole picture, and the road only.
TRACKS = ("smiyc-anomaly", "smiyc-obstacle")
#: The comparisons the thesis and the UEM paper make, reported side by side.
COMPARISONS = {
    "energy_family": ["energy", "normalized_energy", "weighted_normalized_energy"],
    "llr": ["uem_llr", "hyperspherical_llr"],
}


@dataclass
class DemoSettings:
    out: Path = Path("demo_out")
    model: Path = MODEL_DIR / "model.pt"
    params: Optional[Path] = MODEL_DIR / "params.yaml"
    seed: int = 500_000  # a street no training scene used (training seeds are 0-1099)
    frames: int = 60
    fps: float = 10.0
    speed: float = 8.0
    anomalies: int = 3
    size: Sequence[int] = (240, 480)
    #: network input; None: input_height/input_width of the params file (the size its threshold was
    #: calibrated at), else the frame size rounded down to multiples of 14
    input_size: Optional[Sequence[int]] = None
    rate: Optional[float] = None  # None: each frame once the node answered the previous one
    sheet_rows: int = 4
    progress: bool = True


def say(text: str) -> None:
    """A line on stderr that does not break a running progress bar (the node's warnings come mid-replay)."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


def _bar(total: int, desc: str, enabled: bool):
    """A progress bar on stderr, gone when done; drawn only on a terminal, as the command line's bars
    (`hypood_ros.cli.console.progress`, which this module, below the command line, does not import)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, disable=not (enabled and sys.stderr.isatty()),
                dynamic_ncols=True, leave=False)


def message_array(msg) -> np.ndarray:
    """A recorded sensor_msgs/Image (rgb8, mono8 or 32FC1) as a numpy array."""
    from hypood_ros.conversion import image_to_rgb

    if msg.encoding == "rgb8":
        return image_to_rgb(msg.height, msg.width, msg.encoding, msg.step, msg.data, msg.is_bigendian)
    dtype = {"mono8": np.dtype(np.uint8), "32FC1": np.dtype(np.float32)}.get(msg.encoding)
    if dtype is None:
        raise HypoodError(f"unexpected output encoding {msg.encoding!r}")
    dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, : msg.width * dtype.itemsize].copy().view(dtype).reshape(msg.height, msg.width)
    return pixels.astype(dtype.newbyteorder("="))


def recorded_outputs(bag: Path) -> Dict[str, Dict[int, np.ndarray]]:
    """{output name: {stamp ns: array}} from the recorded bag."""
    from hypood_ros.bags import read_frames
    from hypood_ros.node.replay import OUTPUT_TOPICS

    out = {}
    for name in OUTPUT_TOPICS:
        out[name] = {}
        for frame in read_frames(bag, "/" + name):
            stamp = frame.msg.header.stamp
            out[name][stamp.sec * 10**9 + stamp.nanosec] = message_array(frame.msg)
    return out


def node_params(path: Optional[Path]) -> Dict[str, object]:
    """The parameters the node gets from a params YAML (score, threshold, eta, lam, ...), by ROS's section
    rules for the node's name; {} without a file."""
    from hypood_ros.node.params_files import node_values

    return {} if path is None else node_values(path)


def contact_sheet(rows: List[Dict[str, np.ndarray]], path: Path) -> np.ndarray:
    """camera | semantic map | OOD score heat map | mask overlay, one row per frame, titled."""
    import cv2

    from hypood_ros.images import write_image

    titles = ["camera", "semantic map", "OOD score (min-max)", "OOD mask overlay"]
    lines = []
    h, w = rows[0]["camera"].shape[:2]
    head = np.full((22, w * 4, 3), 255, np.uint8)
    for i, title in enumerate(titles):
        cv2.putText(head, title, (i * w + 6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    lines.append(head)
    for row in rows:
        tiles = [row["camera"], row["color"], row["heat"], row["overlay"]]
        strip = np.concatenate(tiles, 1).copy()
        cv2.putText(strip, f"frame {row['index']}", (6, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
        lines.append(strip)
    sheet = np.concatenate(lines, 0)
    write_image(path, sheet)
    return sheet


def write_gif(frames: List[np.ndarray], path: Path, fps: float) -> None:
    from PIL import Image as PILImage

    images = [PILImage.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0,
                   optimize=False)


def _pick_rows(anomaly_frames: List[int], all_frames: int, count: int) -> List[int]:
    pool = anomaly_frames or list(range(all_frames))
    picks = np.linspace(0, len(pool) - 1, min(count, len(pool))).round().astype(int)
    return [pool[i] for i in picks]


def remove_products(out: Path) -> None:
    """An earlier run's products (and half-written ones) in `out`; anything else there is left alone."""
    for name in PRODUCTS + tuple(n + ".partial" for n in PRODUCTS):
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists() or target.is_symlink():
            target.unlink(missing_ok=True)


def run_demo(s: DemoSettings) -> dict:
    from hypood_ros.bags import RecorderThread
    from hypood_ros.dds import AUTO, profile_env, resolve_profile, use_profile
    from hypood_ros.evaluation.datasets import open_dataset
    from hypood_ros.evaluation.evaluate import evaluate, select_scores
    from hypood_ros.evaluation.metrics import PixelSample
    from hypood_ros.node.replay import NodeLauncher, Replayer, node_arguments
    from hypood_ros.runtimes import load_backend
    from hypood_ros.synthetic import writers
    from hypood_ros.training.validate import confusion, miou
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

    say(f"[1/4] generating a {s.frames}-frame drive (street {s.seed}, {s.size[1]}x{s.size[0]}, {s.fps:g} Hz) with "
        f"{s.anomalies} evaluation-family anomalies on the road")
    with _bar(s.frames, "generate", s.progress) as bar:
        frames = []
        for f in writers.drive(s.seed, s.frames, s.fps, s.speed, "evaluation", s.anomalies, s.size):
            frames.append(f)
            bar.update(1)
    writers.write_bag(out / "drive", frames, TOPIC)
    anomaly_names = writers.write_smiyc(out / "anomaly_frames", frames)
    writers.write_smiyc(out / "anomaly_frames", frames, track="ObstacleTrack")
    anomaly_idx = [f.index for f in frames if f.ood.any()]
    if not anomaly_idx:
        raise HypoodError("the generated drive has no anomaly in view; use more frames")

    lap("generate")
    say(f"[2/4] starting hypood_node ({Path(s.model).name}) in its own process and replaying the bag over DDS")
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid() ^ time.time_ns()).randint(10, 200)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    # The node answers each frame with about 1.4 MB of images, more than Fast DDS's default shared-memory
    # segment: without the shipped profile reliable samples wait for a retransmission (seconds per stall).
    profile = resolve_profile(AUTO)
    use_profile(profile)  # before this process's first DDS participant
    # camera_info stays in the bag: the demo shows the masks; the obstacle outputs need the camera's pose
    replayer = Replayer(out / "drive", TOPIC, rate=s.rate or 1.0, max_speed=s.rate is None, frame_timeout=30.0,
                        camera_info=None)
    extra = ["-p", f"input_height:={s.input_size[0]}", "-p", f"input_width:={s.input_size[1]}"]
    launcher = NodeLauncher(node_arguments(str(s.model), TOPIC, False, params_file=s.params, extra=extra,
                                           qos=replayer.qos),  # the node subscribes as the replay publishes
                            env=profile_env(profile, dict(os.environ, PYTHONUNBUFFERED="1")), echo=say)
    recorder = None
    ok = False
    try:
        launcher.wait_ready()
        recorder = RecorderThread(out / "outputs", "mcap")
        with _bar(s.frames, "replay", s.progress) as bar:
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
        say("      " + line)

    lap("node_and_replay")
    say("[3/4] reading the recorded outputs: pictures, mIoU, the node's mask and score")
    outputs = recorded_outputs(record)
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
        if f.ood.any():
            node_sample.add(score, gt)
        gif.append(outputs[T["overlay"]].get(stamp, f.rgb))
        if f.index in picks:
            rows[f.index] = {"index": f.index, "camera": f.rgb, "color": outputs[T["color"]][stamp],
                             "heat": heat_map(score), "overlay": outputs[T["overlay"]][stamp]}
    contact_sheet([rows[i] for i in sorted(rows)], out / "contact_sheet.png")
    write_gif(gif, out / "overlay.gif", s.fps)
    miou_value, ious = miou(matrix)

    lap("pictures_and_node_metrics")
    say(f"[4/4] every score on the {len(anomaly_names)} anomaly frames with the project's evaluator")
    backend = load_backend(str(s.model), device="cpu", input_hw=tuple(s.input_size))
    eval_params = {name: float(params.get(name, default(name))) for name in ("eta", "lam", "delta")}
    names = select_scores("all", False)
    scores = {}
    for track in TRACKS:
        dataset = open_dataset(track, out / "anomaly_frames")
        with _bar(len(dataset.samples), f"evaluate {track}", s.progress) as bar:
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
                  "anomaly_family": "evaluation", "anomaly_frames": len(anomaly_idx)},
        "replay": {"sent": summary.sent, "answered": summary.answered, "dropped": summary.dropped,
                   "complete_frames": complete,
                   "mode": "max-speed" if s.rate is None else f"rate {s.rate:g}",
                   "throughput_fps": answered / summary.duration if summary.duration > 0 else 0.0,
                   "latency_ms": {"p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
                                  "p99": float(np.percentile(lat, 99)), "max": float(lat.max())}
                   if lat.size else None, "node_exit_code": code},
        "segmentation": {"mIoU": miou_value, "iou": {CLASS_NAMES[k]: (None if np.isnan(v) else float(v))
                                                     for k, v in enumerate(ious)},
                         "source": "node's semantic/labels vs generated train ids, all frames"},
        "node_output": {"score": params.get("score", default("score")),
                        "threshold": params.get("threshold", default("threshold")),
                        "metrics": node_sample.metrics() if node_sample.seen[True] else None,
                        "mask_recall": float(mask_hits[0] / max(mask_hits[1], 1)),
                        "mask_false_positive_rate": float(id_flagged[0] / max(id_flagged[1], 1)),
                        "source": "recorded ood/score and ood/mask on the anomaly frames"},
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


def table(result: dict) -> str:
    r, lat = result["replay"], result["replay"]["latency_ms"] or {}
    lines = [
        f"hypood demo: {r['answered'].get('ood/mask', 0)}/{r['sent']} frames answered by the node "
        f"({result['node']})",
        f"  throughput {r['throughput_fps']:.1f} frames/s ({r['mode']}), "
        f"latency ms p50 {lat.get('p50', float('nan')):.0f}"
        f" p90 {lat.get('p90', float('nan')):.0f} p99 {lat.get('p99', float('nan')):.0f}",
        f"  mIoU of the node's semantic map: {100 * result['segmentation']['mIoU']:.1f}%",
        f"  OOD on {result['drive']['anomaly_frames']} frames with anomalies never seen in training:",
        "", "  | score | AP % | AUROC % | FPR95 % | AP % road only | AUROC % road only | FPR95 % road only |",
        "  |---|---:|---:|---:|---:|---:|---:|",
    ]
    whole, road = (result["scores"][t] for t in TRACKS)
    for name, m in whole.items():
        r = road[name]
        lines.append(f"  | {name} | {100 * m['AP']:.1f} | {100 * m['AUROC']:.1f} | {100 * m['FPR95']:.1f} | "
                     f"{100 * r['AP']:.1f} | {100 * r['AUROC']:.1f} | {100 * r['FPR95']:.1f} |")
    node = result["node_output"]
    lines.append("")
    for track, label in zip(TRACKS, ("whole picture", "road only")):
        b = result["best_score"][track]
        lines.append(f"  best ({label}): {b['name']} (AP {100 * b['AP']:.1f}%) vs MSP (AP {100 * b['msp_AP']:.1f}%)")
    lines += [f"  node's mask ({node['score']} > {node['threshold']:.4g}): {100 * node['mask_recall']:.1f}% of anomaly "
              f"pixels flagged, {100 * node['mask_false_positive_rate']:.2f}% of other pixels",
              "  generated scenes and a small model: a demonstration of the pipeline, not the paper's numbers", ""]
    files = result["files"]
    plots = Path(files['pr_smiyc-anomaly']).parent.parent
    summary = Path(files['contact_sheet']).parent / 'summary.json'
    lines += [f"  pictures: {files['contact_sheet']}  {files['overlay_gif']}  {plots}/*/pr.png, roc.png",
              f"  recorded outputs: {files['output_bag']}   summary: {summary}",
              f"  ({result['seconds']:.0f} s)"]
    return "\n".join(lines)
