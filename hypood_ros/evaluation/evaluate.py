"""Every registry score on one benchmark, side by side: table (Markdown + JSON), curves, histograms, heat maps."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from hypood_ros.evaluation.datasets import OODDataset
from hypood_ros.evaluation.metrics import PixelSample, curves
from hypood_ros.preprocess import preprocess
from hypood_ros.runtimes.base import Backend
from hypood_ros.scores import SCORES, ScoreInputs, SMLStats, compute_score


def select_scores(spec: str, has_sml: bool) -> List[str]:
    """'all' or a comma list; SML needs fitted statistics and is left out of 'all' without them."""
    if spec == "all":
        return [n for n, s in SCORES.items() if has_sml or not s.needs_sml]
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for name in names:
        if name not in SCORES:
            from hypood_ros.errors import ConfigError
            raise ConfigError(f"unknown score {name!r}; known: {', '.join(SCORES)}")
    return names


@torch.inference_mode()
def score_maps(backend: Backend, rgb: np.ndarray, names: Iterable[str], size, params: Dict[str, float],
               sml_stats: Optional[SMLStats] = None) -> Dict[str, np.ndarray]:
    """One forward pass; every score upsampled (bilinear) to the label size."""
    outputs = backend.run(preprocess([rgb], backend.input_shape[2:], backend.device))
    inputs = ScoreInputs(outputs["seg_logits"], outputs["embedding"], backend.head, outputs["uem_logits"], sml_stats)
    maps = {}
    for name in names:
        s = compute_score(name, inputs, **params)
        s = F.interpolate(s[:, None], size=tuple(size), mode="bilinear", align_corners=False)[0, 0]
        maps[name] = s.cpu().numpy()
    return maps


def evaluate(backend: Backend, dataset: OODDataset, names: List[str], out: Path, params: Dict[str, float],
             sml_stats: Optional[SMLStats] = None, capacity: int = 4_000_000, heatmaps: int = 3,
             progress=None) -> Dict[str, Dict[str, float]]:
    from hypood_ros.images import write_image
    from hypood_ros.visualize import heat_map

    out.mkdir(parents=True, exist_ok=True)
    samples = {name: PixelSample(capacity) for name in names}
    for index, sample in enumerate(dataset.samples):
        rgb, label = dataset.load(sample)
        maps = score_maps(backend, rgb, names, label.shape, params, sml_stats)
        for name, score in maps.items():
            samples[name].add(score, label)
            if index < heatmaps:
                (out / "heatmaps").mkdir(exist_ok=True)
                write_image(out / "heatmaps" / f"{sample.name}_{name}.png", heat_map(score))
        if progress is not None:
            progress.update(1)
    results = {name: samples[name].metrics() for name in names}
    write_tables(out, dataset, results, params, capacity, samples)
    write_plots(out, samples)
    return results


def write_tables(out: Path, dataset: OODDataset, results, params, capacity, samples) -> None:
    first = next(iter(samples.values()))
    meta = {"dataset": dataset.name, "root": str(dataset.root), "images": len(dataset.samples), "params": params,
            "pixels": {"ood": first.seen[True], "in_distribution": first.seen[False]},
            "sampling": f"uniform bottom-k sample of at most {capacity // 2} pixels per class, weighted back "
                        "to the full class counts (exact when the data is smaller)"}
    (out / "results.json").write_text(json.dumps({"meta": meta, "scores": results}, indent=2) + "\n")
    lines = [f"# {dataset.name}: {len(dataset.samples)} images", "",
             "| score | AP (%) | AUROC (%) | FPR95 (%) |", "|---|---:|---:|---:|"]
    for name, m in results.items():
        lines.append(f"| {name} | {100 * m['AP']:.2f} | {100 * m['AUROC']:.2f} | {100 * m['FPR95']:.2f} |")
    lines += ["", f"Pixels: {first.seen[True]} OOD, {first.seen[False]} in-distribution (void ignored). "
              f"Parameters: {params}. {meta['sampling']}."]
    (out / "results.md").write_text("\n".join(lines) + "\n")


def write_plots(out: Path, samples: Dict[str, PixelSample]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_roc, ax_roc = plt.subplots(figsize=(6, 6))
    fig_pr, ax_pr = plt.subplots(figsize=(6, 6))
    colors = plt.cm.tab20(np.linspace(0, 1, 20))[::2]  # twelve scores, no repeated color
    colors = np.r_[colors, plt.cm.tab20(np.linspace(0, 1, 20))[1::2]]
    for ax in (ax_roc, ax_pr):
        ax.set_prop_cycle(color=colors)
    for name, sample in samples.items():
        neg, pos = sample.values[False], sample.values[True]
        c = curves(np.r_[neg, pos], np.r_[np.zeros(neg.size, np.uint8), np.ones(pos.size, np.uint8)])
        ax_roc.plot(c.fpr, c.tpr, label=name)
        ax_pr.plot(c.recall, c.precision, label=name)
        fig, ax = plt.subplots(figsize=(6, 4))
        bins = np.linspace(min(neg.min(), pos.min()), max(neg.max(), pos.max()), 100)
        ax.hist(neg, bins=bins, density=True, alpha=0.6, label="in-distribution")
        ax.hist(pos, bins=bins, density=True, alpha=0.6, label="OOD")
        ax.set(xlabel=f"{name} (higher = more OOD)", ylabel="density", title=name)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"hist_{name}.png", dpi=100)
        plt.close(fig)
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax_pr.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    for fig, ax, name in ((fig_roc, ax_roc, "roc.png"), (fig_pr, ax_pr, "pr.png")):
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
