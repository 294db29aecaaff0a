"""The table `hypood demo` prints from its summary."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from hypood_ros.apps.demo.settings import TRACKS


def _share(value: Optional[float], digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def obstacle_lines(o: dict) -> List[str]:
    """The printed table's obstacle part (the node's mask and reported obstacles against the generated ones)."""
    region, road = o["region"], o["components"]["smiyc-obstacle"]
    error, false = o["range_error"], o["false_obstacles"]
    bands = "  ".join(f"{name} m: {b['found']}/{b['found'] + b['missed']}" for name, b in o["bands"].items())
    lines = [f"  obstacles on {o['frames']} frames: {o['found']}/{o['in_view']} found by the node's mask "
             f"(sIoU >= {o['found_siou']:g}); of the obstacles within 30 m, "
             f"{_share(o['share_found_within_30m'], 0)} found",
             f"    found / in view by true range: {bands}"]
    for errors, which in ((error, "found obstacles"), (o["range_error_any_report"], "obstacles with a report, "
                                                                                     "found or not")):
        if errors["obstacles"]:
            absolute, relative = errors["abs_m"], errors["rel"]
            lines.append(f"    reported range, error over the {errors['obstacles']} {which}: median "
                         f"{absolute['median']:.2f} m ({_share(relative['median'])}), p90 {absolute['p90']:.2f} m "
                         f"({_share(relative['p90'])})")
        else:
            lines.append(f"    reported range, error over the {which}: none to measure")
    if false["per_frame"] is not None:
        lines.append(f"    false obstacles: {false['per_frame']:.2f} per frame ({false['total']} of "
                     f"{false['reported']} reported)")
    lines += [f"  component metrics, road only: sIoU {_share(road['sIoU_gt'])}, PPV {_share(road['PPV'])}, "
              f"mean F1 {_share(road['F1_mean'])}",
              f"  node's mask inside its region (roi {region['roi']}): {_share(region['mask_recall'])} of anomaly "
              f"pixels flagged, {_share(region['mask_false_positive_rate'], 2)} of other pixels"]
    return lines


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
              f"pixels flagged, {100 * node['mask_false_positive_rate']:.2f}% of other pixels"]
    lines += obstacle_lines(result["obstacles"])
    lines += ["  generated scenes and a small model: a demonstration of the pipeline, not the paper's numbers", ""]
    files = result["files"]
    plots = Path(files['pr_smiyc-anomaly']).parent.parent
    summary = Path(files['contact_sheet']).parent / 'summary.json'
    lines += [f"  pictures: {files['contact_sheet']}  {files['overlay_gif']}  {plots}/*/pr.png, roc.png",
              f"  recorded outputs: {files['output_bag']}   summary: {summary}",
              f"  ({result['seconds']:.0f} s)"]
    return "\n".join(lines)
