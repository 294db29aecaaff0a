"""The results of `hypood fleet`: one folder per bag as each finishes, and the whole run's report.

OUT/bags/NAME/ (written under NAME.partial, renamed when complete, so a folder that exists is whole):
  result.json   the bag's summary and its key (a later run with the same key skips the bag)
  frames.csv    one row per frame (`work` records)
  truth.npz     with ground truth: the pixel samples and mask tallies, merged over bags for the totals
  thumbs/       the frames to look at: camera | model's mask | baseline's mask
OUT/summary.json, OUT/frames.csv (+ frames.parquet where pyarrow is installed), OUT/report.md, OUT/plots/.
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from hypood_ros.fleet.work import GT_TRACK, BagJob

MODELS = ("model", "baseline")


def _stats(values: Sequence[float]) -> Optional[Dict[str, float]]:
    v = np.asarray([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], np.float64)
    if not v.size:
        return None
    return {"mean": float(v.mean()), "p50": float(np.percentile(v, 50)), "p90": float(np.percentile(v, 90)),
            "p99": float(np.percentile(v, 99)), "max": float(v.max()), "min": float(v.min())}


def _column(records: Iterable[dict], name: str) -> List:
    return [r.get(name) for r in records]


def _number(text: str):
    if text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return text
    return value


def read_csv(path: Path) -> List[dict]:
    with open(path, newline="") as f:
        return [{k: (v if k.endswith("ranges_m") else _number(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def write_csv(path: Path, records: Sequence[dict]) -> None:
    columns: List[str] = []
    for r in records:
        columns += [k for k in r if k not in columns]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for r in records:
            writer.writerow({k: "" if r.get(k) is None else r[k] for k in columns})


# -- ground truth: pixel samples and mask tallies, kept per bag and merged over bags ---------------------------

def _save_truth(path: Path, truth: Dict[str, object]) -> None:
    from hypood_ros.evaluation.mask_metrics import PIXEL_COUNTS

    arrays = {}
    for name, t in truth.items():
        if t is None:
            continue
        s, tally = t.sample, t.tally
        c = tally.components
        arrays.update({
            f"{name}_neg_values": s.values[False], f"{name}_neg_keys": s.keys[False],
            f"{name}_pos_values": s.values[True], f"{name}_pos_keys": s.keys[True],
            f"{name}_seen": np.array([s.seen[False], s.seen[True], s.share], np.int64),
            f"{name}_thresholds": c.thresholds, f"{name}_tp": c.tp, f"{name}_fn": c.fn, f"{name}_fp": c.fp,
            f"{name}_sums": np.array([c.sums["sIoU_gt"], c.sums["PPV"], c.sums["sIoU_pred"]], np.float64),
            f"{name}_counts": np.array([c.gt_components, c.pred_components, c.frames, tally.gt_outside], np.int64),
            f"{name}_pixels": np.array([tally.counts[k] for k in PIXEL_COUNTS], np.int64)})
    np.savez(path, **arrays)


def _load_truth(path: Path) -> Dict[str, object]:
    from hypood_ros.evaluation.components import ComponentTally
    from hypood_ros.evaluation.mask_metrics import PIXEL_COUNTS, MaskTally
    from hypood_ros.evaluation.metrics import PixelSample
    from hypood_ros.fleet.work import _Truth

    out: Dict[str, object] = {}
    with np.load(path) as z:
        for name in MODELS:
            if f"{name}_seen" not in z:
                continue
            seen = z[f"{name}_seen"]
            sample = PixelSample(capacity=2 * int(seen[2]))
            sample.values = {False: z[f"{name}_neg_values"], True: z[f"{name}_pos_values"]}
            sample.keys = {False: z[f"{name}_neg_keys"], True: z[f"{name}_pos_keys"]}
            sample.seen = {False: int(seen[0]), True: int(seen[1])}
            tally = MaskTally(GT_TRACK)
            c = tally.components = ComponentTally(z[f"{name}_thresholds"])
            c.tp, c.fn, c.fp = (z[f"{name}_{k}"].astype(np.int64) for k in ("tp", "fn", "fp"))
            c.sums = dict(zip(("sIoU_gt", "PPV", "sIoU_pred"), z[f"{name}_sums"].tolist()))
            c.gt_components, c.pred_components, c.frames, tally.gt_outside = z[f"{name}_counts"].tolist()
            tally.counts = dict(zip(PIXEL_COUNTS, z[f"{name}_pixels"].tolist()))
            out[name] = _Truth(sample, tally)
    return out


def truth_metrics(t) -> Dict[str, object]:
    """AP / AUROC / FPR95 of the score and the mask's component and pixel metrics (`hypood eval`'s)."""
    from hypood_ros.errors import HypoodError

    try:
        pixel = t.sample.metrics()
    except HypoodError as exc:  # no OOD pixel (or no in-distribution pixel) in these frames
        pixel = {"AP": None, "AUROC": None, "FPR95": None, "note": str(exc)}
    return {**pixel, "mask": t.tally.summary()}


# -- one bag ---------------------------------------------------------------------------------------------------

def bag_summary(job: BagJob, records: List[dict], result: dict, workers: Sequence[dict]) -> dict:
    """result.json of one bag: what its frames say, and where and how fast they ran."""
    base = any("iou" in r for r in records)
    summary = {
        "key": job.key, "bag": job.bag, "topic": job.topic, "name": job.name, "frames": len(records),
        "skipped": result["skipped"], "skip_reason": result["skip_reason"],
        "seconds": result["seconds"], "cpu_seconds": result["cpu_seconds"],
        "frames_per_s": len(records) / result["seconds"] if result["seconds"] else None,
        "workers": list(workers), "camera": result["camera"], "camera_note": result["camera_note"],
        "truth_frames": result["truth_frames"], "classes": result["classes"],
    }
    for name in MODELS[: 1 + base]:
        p = "" if name == "model" else "base_"
        obstacles = _column(records, f"{p}obstacles")
        summary[name] = {
            "flagged_share": _stats(_column(records, f"{p}flagged_share")),
            "frames_flagged": sum(1 for v in _column(records, f"{p}flagged_px") if v),
            "components_per_frame": _stats(_column(records, f"{p}components")),
            "obstacles_per_frame": _stats(obstacles) if result["camera"] else None,
            "nearest_m": _stats(_column(records, f"{p}nearest_m")) if result["camera"] else None,
        }
    summary["model"]["class_shares"] = {c: float(np.mean(_column(records, f"share_{_slug(c)}")))
                                        for c in result["classes"]} if records else {}
    if base:
        iou = _column(records, "iou")
        summary["comparison"] = {"iou": _stats(iou), "frames_iou_below_0.5": sum(1 for v in iou if v < 0.5),
                                 "gained": int(sum(_column(records, "gained"))),
                                 "lost": int(sum(_column(records, "lost")))}
    summary["truth"] = {name: truth_metrics(t) for name, t in result["truth"].items() if t is not None}
    return summary


def _slug(text: str) -> str:
    from hypood_ros.fleet.work import _slug as slug

    return slug(text)


class FleetOutput:
    """The output folder: per-bag folders (skipped when their key matches) and the report."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.bags = self.root / "bags"
        self.bags.mkdir(parents=True, exist_ok=True)

    def finished(self, job: BagJob) -> Optional[dict]:
        """The bag's summary when a complete result with the same key is there, else None."""
        path = self.bags / job.name / "result.json"
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return summary if summary.get("key") == job.key else None

    def write_bag(self, job: BagJob, records: List[dict], result: dict, workers: Sequence[dict]) -> dict:
        from hypood_ros.images import write_image

        final = self.bags / job.name
        partial = self.bags / (job.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        (partial / "thumbs").mkdir(parents=True)
        records = sorted(records, key=lambda r: r["frame"])
        summary = bag_summary(job, records, result, workers)
        write_csv(partial / "frames.csv", records)
        if summary["truth"]:
            _save_truth(partial / "truth.npz", result["truth"])
        top = []
        by_frame = {r["frame"]: r for r in records}
        for rank, frame, image in result["top"]:
            name = f"thumbs/frame_{frame:06d}.png"
            write_image(partial / name, image)
            top.append({"frame": frame, "rank": rank, "iou": by_frame[frame].get("iou"),
                        "flagged_share": by_frame[frame]["flagged_share"], "thumbnail": name})
        summary["top"] = top
        (partial / "result.json").write_text(json.dumps(summary, indent=1) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        return summary

    def records(self, summary: dict) -> List[dict]:
        return read_csv(self.bags / summary["name"] / "frames.csv")

    def truth(self, summary: dict) -> Dict[str, object]:
        path = self.bags / summary["name"] / "truth.npz"
        return _load_truth(path) if path.is_file() else {}

    # -- the whole run -----------------------------------------------------------------------------------------

    def write_report(self, summaries: List[dict], failures: List[Tuple[str, str]], run: dict) -> dict:
        """summary.json, frames.csv / .parquet, plots and report.md over the finished bags."""
        summaries = sorted(summaries, key=lambda s: (s["bag"], s["topic"]))
        records = [r for s in summaries for r in self.records(s)]
        write_csv(self.root / "frames.csv", records)
        parquet = _parquet(self.root / "frames.parquet", records)
        base = any("comparison" in s for s in summaries)
        camera = any(s["camera"] for s in summaries)
        total = {"bags": len(summaries), "frames": len(records), "failed": len(failures)}
        for name in MODELS[: 1 + base]:
            p = "" if name == "model" else "base_"
            total[name] = {"flagged_share": _stats(_column(records, f"{p}flagged_share")),
                           "frames_flagged": sum(1 for v in _column(records, f"{p}flagged_px") if v),
                           "obstacles_per_frame": _stats(_column(records, f"{p}obstacles")) if camera else None,
                           "nearest_m": _stats(_column(records, f"{p}nearest_m")) if camera else None}
        if base:
            total["comparison"] = {"iou": _stats(_column(records, "iou")),
                                   "gained": int(sum(s["comparison"]["gained"] for s in summaries)),
                                   "lost": int(sum(s["comparison"]["lost"] for s in summaries))}
        merged: Dict[str, object] = {}
        for s in summaries:
            for name, t in self.truth(s).items():
                if name in merged:
                    merged[name].sample.merge(t.sample)
                    merged[name].tally.merge(t.tally)
                else:
                    merged[name] = t
        total["truth"] = {name: truth_metrics(t) for name, t in merged.items()}
        top = sorted(((t["rank"], s["name"], t) for s in summaries for t in s.get("top", [])),
                     key=lambda x: (-x[0], x[1], x[2]["frame"]))[: run.get("top_k", 6)]
        total["top"] = [{"bag": s_name, **t, "thumbnail": f"bags/{s_name}/{t['thumbnail']}"} for _, s_name, t in top]
        summary = {"run": run, "total": total, "bags": summaries,
                   "failures": [{"bag": b, "error": e} for b, e in failures],
                   "files": {"frames_csv": "frames.csv", "frames_parquet": "frames.parquet" if parquet else None,
                             "report": "report.md"}}
        plots = _plots(self.root / "plots", records, summaries, base, camera)
        (self.root / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        (self.root / "report.md").write_text(markdown(summary, plots))
        return summary


def _parquet(path: Path, records: List[dict]) -> bool:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    columns: List[str] = []
    for r in records:
        columns += [k for k in r if k not in columns]
    table = {}
    for c in columns:
        values = [r.get(c) for r in records]
        try:
            table[c] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed kinds: kept as text, as in the CSV
            table[c] = pa.array([None if v is None else str(v) for v in values])
    pq.write_table(pa.table(table), path)
    return True


def _plots(folder: Path, records: List[dict], summaries: List[dict], base: bool, camera: bool) -> List[str]:
    """PNG plots (relative paths): flagged share over frames, per bag, obstacles and ranges, IoU, class shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    out = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(folder / name, dpi=90)
        plt.close(fig)
        out.append(f"plots/{name}")

    if not records:
        return out
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, p in (("model", ""), ("baseline", "base_"))[: 1 + base]:
        ax.hist([100 * v for v in _column(records, f"{p}flagged_share")], bins=40, alpha=0.6, label=name)
    ax.set(xlabel="% of the region flagged", ylabel="frames", yscale="log", title="Flagged share over frames")
    ax.legend()
    save(fig, "flagged_share.png")
    if len(summaries) > 1:
        fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(summaries)), 3.5))
        by_bag = [[100 * r["flagged_share"] for r in records if r["bag"] == s["bag"] and r["topic"] == s["topic"]]
                  for s in summaries]
        ax.boxplot(by_bag)
        ax.set_xticks(range(1, len(summaries) + 1), [s["name"][:16] for s in summaries], rotation=60, fontsize=7)
        ax.set(ylabel="% of the region flagged", title="Flagged share per bag")
        save(fig, "flagged_share_per_bag.png")
    if camera:
        fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.5))
        counts = [v for v in _column(records, "obstacles") if v is not None]
        a.hist(counts, bins=np.arange(0, max(counts + [1]) + 2) - 0.5)
        a.set(xlabel="obstacles per frame", ylabel="frames")
        ranges = [float(x) for r in records if r.get("ranges_m") for x in str(r["ranges_m"]).split(";")]
        b.hist(ranges, bins=30)
        b.set(xlabel="obstacle range (m)", ylabel="obstacles")
        save(fig, "obstacles.png")
    if base:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist(_column(records, "iou"), bins=np.linspace(0, 1, 41))
        ax.set(xlabel="mask IoU, model vs baseline", ylabel="frames", yscale="log", title="Agreement per frame")
        save(fig, "iou.png")
    shares = summaries[0]["model"].get("class_shares", {})
    if shares:
        names = list(shares)
        means = [float(np.mean([r[f"share_{_slug(c)}"] for r in records])) for c in names]
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.bar(range(len(names)), [100 * m for m in means])
        ax.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
        ax.set(ylabel="% of pixels", title="Class shares (model)")
        save(fig, "class_shares.png")
    return out


def _pct(value: Optional[float], digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def _num(value: Optional[float], digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(summary: dict, plots: List[str]) -> str:
    run, total = summary["run"], summary["total"]
    base = "comparison" in total
    lines = ["# hypood fleet report", "",
             f"Model `{run['model']}`" + (f" against baseline `{run['baseline']}`" if base else "") +
             f"; every {run['every']} frame(s); {run['workers']} worker(s) on {run['nodes']} node(s).", "",
             f"Bags finished: {total['bags']} ({total['frames']} frames); skipped as already done: "
             f"{run['skipped_bags']}; failed: {total['failed']}; {_num(run['frames_per_s'], 1)} frames/s over "
             f"{_num(run['seconds'], 1)} s."]
    if run.get("interrupted"):
        lines += ["", f"**Interrupted**: {run['interrupted']}"]
    m = total["model"]
    lines += ["", "## Over all bags", "", "| | model |" + (" baseline |" if base else ""),
              "|---|---:|" + ("---:|" if base else "")]
    rows = [("region flagged, mean %", lambda t: _pct((t["flagged_share"] or {}).get("mean"), 3)),
            ("region flagged, p99 %", lambda t: _pct((t["flagged_share"] or {}).get("p99"), 3)),
            ("frames with any flagged pixel", lambda t: str(t["frames_flagged"])),
            ("obstacles per frame, mean", lambda t: _num((t["obstacles_per_frame"] or {}).get("mean"))),
            ("nearest obstacle, median m", lambda t: _num((t["nearest_m"] or {}).get("p50"), 1))]
    for label, get in rows:
        lines.append(f"| {label} | {get(m)} |" + (f" {get(total['baseline'])} |" if base else ""))
    if base:
        c = total["comparison"]
        iou = c["iou"] or {}
        lines += ["", f"Mask IoU model vs baseline per frame: mean {_num(iou.get('mean'), 4)}, min "
                      f"{_num(iou.get('min'), 4)}; mask components gained {c['gained']}, lost {c['lost']} "
                      "(a component with no pixel in the other model's mask)."]
    if total["truth"]:
        lines += ["", "## Against the ground truth in the bags", "",
                  f"As `hypood eval` computes them ({GT_TRACK} component sizes).", "",
                  "| model | AP % | AUROC % | FPR95 % | sIoU % | PPV % | mean F1 % | pixel recall % | pixel FPR % |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, t in total["truth"].items():
            comp, px = t["mask"]["components"], t["mask"]["pixels"]
            lines.append(f"| {name} | {_pct(t['AP'])} | {_pct(t['AUROC'])} | {_pct(t['FPR95'])} | "
                         f"{_pct(comp['sIoU_gt'])} | {_pct(comp['PPV'])} | {_pct(comp['F1_mean'])} | "
                         f"{_pct(px['recall'])} | {_pct(px['fpr'], 3)} |")
    lines += ["", "## Per bag", "",
              "| bag | topic | frames | frames/s | flagged mean % | flagged p99 % | obstacles/frame |" +
              (" IoU mean | IoU min | gained | lost |" if base else "") + " AP % |",
              "|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|---:|---:|" if base else "") + "---:|"]
    for s in summary["bags"]:
        f = s["model"]["flagged_share"] or {}
        row = (f"| {s['name']} | {s['topic']} | {s['frames']} | {_num(s['frames_per_s'], 1)} | "
               f"{_pct(f.get('mean'), 3)} | {_pct(f.get('p99'), 3)} | "
               f"{_num((s['model']['obstacles_per_frame'] or {}).get('mean'))} |")
        if base:
            c = s.get("comparison") or {}
            iou = c.get("iou") or {}
            row += f" {_num(iou.get('mean'), 4)} | {_num(iou.get('min'), 4)} | {c.get('gained')} | {c.get('lost')} |"
        row += f" {_pct(s['truth']['model']['AP']) if 'model' in s['truth'] else 'n/a'} |"
        lines.append(row)
    if total["top"]:
        what = "lowest mask IoU (camera, model, baseline)" if base else "most flagged (camera, model's mask)"
        lines += ["", f"## Frames to look at: {what}", ""]
        for t in total["top"]:
            value = f"IoU {t['iou']:.3f}" if base else f"{100 * t['flagged_share']:.2f}% flagged"
            lines += [f"{t['bag']} frame {t['frame']} ({value})", "", f"![]({t['thumbnail']})", ""]
    if plots:
        lines += ["", "## Plots", ""] + [f"![]({p})" for p in plots]
    if summary["failures"]:
        lines += ["", "## Failed bags", ""] + [f"- {f['bag']}: {f['error']}" for f in summary["failures"]]
    workers = {(w["node"], w["pid"]): w for s in summary["bags"] for w in s["workers"]}
    if workers:
        lines += ["", "## Workers", "", "| node | pid | peak memory MB | bags |", "|---|---:|---:|---:|"]
        for (node, pid), w in sorted(workers.items(), key=lambda x: (str(x[0][0]), x[0][1])):
            bags = sum(1 for s in summary["bags"] for v in s["workers"] if (v["node"], v["pid"]) == (node, pid))
            memory = "n/a (restarted)" if w["max_rss_mb"] is None else f"{w['max_rss_mb']:.0f}"
            lines.append(f"| {node} | {pid} | {memory} | {bags} |")
    lines += ["", "Per-frame values: `frames.csv`" + (" / `frames.parquet`" if summary["files"]["frames_parquet"]
                                                       else "") + "; everything above: `summary.json`.", ""]
    return "\n".join(lines)
