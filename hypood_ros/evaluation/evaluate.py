"""Every registry score on one benchmark, side by side: table (Markdown + JSON), curves, histograms, heat maps;
and the component metrics of one obstacle mask made as the node makes it (`mask_metrics`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from hypood_ros.errors import ConfigError
from hypood_ros.evaluation.datasets import OODDataset, left_out_line
from hypood_ros.evaluation.mask_metrics import (
    MaskSpec,
    MaskTally,
    best_threshold,
    mask_result,
    mask_table,
    threshold_values,
)
from hypood_ros.evaluation.metrics import PixelSample, curves
from hypood_ros.preprocess import preprocess
from hypood_ros.runtimes.base import Backend
from hypood_ros.scores import SCORES, ScoreInputs, SMLStats, check_score_resolution
from hypood_ros.scores import score_maps as registry_score_maps


def select_scores(spec: str, has_sml: bool, delta: float = 0.0) -> List[str]:
    """'all' or a comma list. 'all' leaves out SML without fitted statistics, and delta_max_logit at delta 0,
    where it is normalized_max_logit (the same map, a duplicate row)."""
    if spec == "all":
        return [n for n, s in SCORES.items()
                if (has_sml or not s.needs_sml) and not (n == "delta_max_logit" and delta == 0.0)]
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for name in names:
        if name not in SCORES:
            raise ConfigError(f"unknown score {name!r}; known: {', '.join(SCORES)}")
    return names


#: Test-time protocols of `hypood eval`: one resized pass, or the UEM authors' sliding window.
PROTOCOLS = ("single", "sliding")
#: Stride of the sliding window (rows, columns) in image pixels, as in the UEM authors' evaluation configs
#: (window 518x1036 = the default network input, stride 140x140).
SLIDING_STRIDE = (140, 140)


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return protocol


def window_starts(length: int, window: int, stride: int) -> List[int]:
    """Window offsets along one axis: 0, stride, 2*stride, ... below length - window, then one window flush
    with the far edge. Where the authors' loop stops one stride short of covering the image (length - window
    a multiple of the stride, or length == window) the flush window is still added here."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window, stride))
    return starts + [length - window]


def _network_inputs(backend: Backend, rgb: np.ndarray, sml_stats: Optional[SMLStats]) -> ScoreInputs:
    outputs = backend.run(preprocess([rgb], backend.input_shape[2:], backend.device))
    return ScoreInputs(outputs["seg_logits"], outputs["embedding"], backend.head, outputs["uem_logits"], sml_stats)


def sliding_maps(backend: Backend, rgb: np.ndarray, names: List[str], params: Dict[str, float],
                 sml_stats: Optional[SMLStats] = None, resolution: str = "image",
                 stride: Sequence[int] = SLIDING_STRIDE) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
    """Sliding-window inference at the image's native resolution: ({name: float32 [H,W]}, class ids uint8 [H,W]).

    Windows of the network input size step by `stride` over the image (`window_starts`; a stride larger
    than the window is reduced to the window so that no pixel is skipped); an image smaller than the window
    is padded with black pixels, centred, and the padding is cropped off again. Every
    window's outputs are interpolated to the window (logits, UEM logits and ||z||, `ScoreInputs.resized`),
    summed where windows overlap and divided by the number of windows per pixel; the scores are then formed
    per image pixel (`image`). At `network` each window's score is formed on its grid and upsampled to the
    window, and the scores are averaged instead. The class ids are the argmax of the averaged logits at
    both resolutions (at `network` each window's logits are upsampled bilinearly to the window, as its scores).
    """
    height, width = rgb.shape[:2]
    win_h, win_w = (int(v) for v in backend.input_shape[2:])
    pad_top, pad_left = max(0, win_h - height) // 2, max(0, win_w - width) // 2
    if height < win_h or width < win_w:
        padded = np.zeros((max(height, win_h), max(width, win_w), 3), np.uint8)
        padded[pad_top:pad_top + height, pad_left:pad_left + width] = rgb
        rgb = padded
    full_h, full_w = rgb.shape[:2]
    device = backend.device
    count = torch.zeros((1, 1, full_h, full_w), device=device)
    sums: Dict[Tuple[str, str], torch.Tensor] = {}  # ("input", logits | norm | uem) or ("score", name)
    for top in window_starts(full_h, win_h, min(win_h, int(stride[0]))):
        for left in window_starts(full_w, win_w, min(win_w, int(stride[1]))):
            window = np.ascontiguousarray(rgb[top:top + win_h, left:left + win_w])
            inputs = _network_inputs(backend, window, sml_stats)
            if resolution == "image":
                resized = inputs.resized((win_h, win_w))
                parts = {("input", "logits"): resized.logits, ("input", "norm"): resized.embedding}
                if resized.uem_logits is not None:
                    parts["input", "uem"] = resized.uem_logits
            else:
                maps, _ = registry_score_maps(names, inputs, (win_h, win_w), "network", **params)
                parts = {("score", name): score[:, None] for name, score in maps.items()}
                parts["input", "logits"] = F.interpolate(inputs.logits.float(), size=(win_h, win_w), mode="bilinear",
                                                         align_corners=False)
            for key, value in parts.items():
                if key not in sums:
                    sums[key] = torch.zeros((1, value.shape[1], full_h, full_w), device=device)
                sums[key][:, :, top:top + win_h, left:left + win_w] += value
            count[:, :, top:top + win_h, left:left + win_w] += 1
    crop = (slice(None), slice(None), slice(pad_top, pad_top + height), slice(pad_left, pad_left + width))
    mean = {key: (value / count)[crop] for key, value in sums.items()}
    logits = mean["input", "logits"]
    class_ids = logits[0].max(dim=0).indices.to(torch.uint8)  # the first maximum, as argmax
    if resolution == "image":
        averaged = ScoreInputs(logits, mean["input", "norm"], backend.head, mean.get(("input", "uem")), sml_stats)
        maps, _ = registry_score_maps(names, averaged, (height, width), "image", **params)
        return {name: score[0] for name, score in maps.items()}, class_ids
    return {name: mean["score", name][0, 0] for name in names}, class_ids


@torch.inference_mode()
def frame_maps(backend: Backend, rgb: np.ndarray, names: Iterable[str], size, params: Dict[str, float],
               sml_stats: Optional[SMLStats] = None, resolution: str = "image",
               protocol: str = "single") -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """Every score of `names` at the label size, as float32 host arrays, and the predicted class ids (uint8,
    the same size) that the obstacle mask's region of interest is formed from.

    `single`: one pass at the network input size, scored at `resolution` (scores.SCORE_RESOLUTIONS) to
    `size`; the class ids as the registry gives them at that resolution. `sliding`: `sliding_maps` at the
    image's native resolution (`size` must be the image size).
    """
    names = list(names)
    check_score_resolution(resolution)
    if check_protocol(protocol) == "sliding":
        if tuple(size) != tuple(rgb.shape[:2]):
            raise ConfigError(f"the sliding protocol scores at the image size {rgb.shape[1]}x{rgb.shape[0]}, "
                              f"labels are {size[1]}x{size[0]}")
        maps, class_ids = sliding_maps(backend, rgb, names, params, sml_stats, resolution)
    else:
        inputs = _network_inputs(backend, rgb, sml_stats)
        batch, ids = registry_score_maps(names, inputs, size, resolution, **params)
        maps, class_ids = {name: score[0] for name, score in batch.items()}, ids[0]
    return {name: score.float().cpu().numpy() for name, score in maps.items()}, class_ids.cpu().numpy()


def score_maps(backend: Backend, rgb: np.ndarray, names: Iterable[str], size, params: Dict[str, float],
               sml_stats: Optional[SMLStats] = None, resolution: str = "image",
               protocol: str = "single") -> Dict[str, np.ndarray]:
    """Every score of `names` at the label size, as float32 host arrays (`frame_maps` without the class ids)."""
    return frame_maps(backend, rgb, names, size, params, sml_stats, resolution, protocol)[0]


def evaluate(backend: Backend, dataset: OODDataset, names: List[str], out: Path, params: Dict[str, float],
             sml_stats: Optional[SMLStats] = None, capacity: int = 4_000_000, heatmaps: int = 3,
             progress=None, resolution: str = "image", protocol: str = "single",
             mask: Optional[MaskSpec] = None) -> Dict[str, Dict[str, float]]:
    """Pixel metrics of every score of `names` (returned, and written with curves, histograms and heat maps);
    with `mask`, also the component and pixel metrics of that obstacle mask (`mask_metrics`), in the tables.

    A mask without a threshold takes the best pixel F1 threshold of its score on this dataset, known only
    once every frame was scored: a second pass then scores the mask score alone (`passes` counts them for a
    progress bar, which advances once per frame and pass).
    """
    from hypood_ros.images import write_image
    from hypood_ros.visualize import heat_map

    check_score_resolution(resolution)
    check_protocol(protocol)
    out.mkdir(parents=True, exist_ok=True)
    samples = {name: PixelSample(capacity) for name in names}
    scored = list(names)
    tally = mask_sample = None
    if mask is not None:
        tally = MaskTally(dataset.name)
        if mask.score not in scored:
            scored.append(mask.score)
        if mask.threshold is None:  # the score's own sample serves, unless the mask thresholds its contrast
            shared = mask.score in samples and not mask.local_contrast
            mask_sample = samples[mask.score] if shared else PixelSample(capacity)
    for index, sample in enumerate(dataset.samples):
        rgb, label = dataset.load(sample)
        maps, class_ids = frame_maps(backend, rgb, scored, label.shape, params, sml_stats, resolution, protocol)
        for name in names:
            samples[name].add(maps[name], label)
            if index < heatmaps:
                (out / "heatmaps").mkdir(exist_ok=True)
                write_image(out / "heatmaps" / f"{sample.name}_{name}.png", heat_map(maps[name]))
        if mask_sample is not None and mask_sample is not samples.get(mask.score):
            mask_sample.add(*threshold_values(maps[mask.score], class_ids, label, mask))
        if mask is not None and mask.threshold is not None:
            tally.measure(maps[mask.score], class_ids, label, mask.config(mask.threshold))
        if progress is not None:
            progress.update(1)
    mask_summary = None
    if mask is not None:
        best = None if mask.threshold is not None else best_threshold(mask_sample)
        threshold = mask.threshold if best is None else best.threshold
        if best is not None:  # the threshold is known now: the mask score alone, once more
            config = mask.config(threshold)
            for sample in dataset.samples:
                rgb, label = dataset.load(sample)
                maps, class_ids = frame_maps(backend, rgb, [mask.score], label.shape, params, sml_stats, resolution,
                                             protocol)
                tally.measure(maps[mask.score], class_ids, label, config)
                if progress is not None:
                    progress.update(1)
        mask_summary = mask_result(mask, threshold, tally, dataset.name, best)
    results = {name: samples[name].metrics() for name in names}
    write_tables(out, dataset, results, params, capacity, samples,
                 describe_protocol(backend, protocol, resolution), mask_summary)
    write_plots(out, samples)
    return results


def passes(mask: Optional[MaskSpec]) -> int:
    """Passes `evaluate` makes over the dataset: two when the mask's threshold is chosen on the dataset."""
    return 2 if mask is not None and mask.threshold is None else 1


def describe_protocol(backend: Backend, protocol: str, resolution: str) -> Dict[str, object]:
    """What the summary says about how the maps were made."""
    height, width = (int(v) for v in backend.input_shape[2:])
    if protocol == "sliding":
        stride = [min(height, SLIDING_STRIDE[0]), min(width, SLIDING_STRIDE[1])]
        text = (f"sliding window {width}x{height} at the native image resolution, stride "
                f"{stride[1]}x{stride[0]}, overlapping windows averaged")
        info = {"name": protocol, "window": [height, width], "stride": stride}
    else:
        text = f"single pass, image resized to the network input {width}x{height}"
        info = {"name": protocol, "input": [height, width]}
    info["score_resolution"] = resolution
    info["text"] = f"Protocol: {protocol} ({text}); score resolution: {resolution}."
    return info


def write_tables(out: Path, dataset: OODDataset, results, params, capacity, samples,
                 protocol: Dict[str, object], mask: Optional[Dict[str, object]] = None) -> None:
    """results.json and results.md; `mask` (from `mask_metrics.mask_result`) adds its entry and section."""
    first = next(iter(samples.values()))
    meta = {"dataset": dataset.name, "root": str(dataset.root), "images": len(dataset.samples), "params": params,
            "protocol": {k: v for k, v in protocol.items() if k != "text"}, "left_out": dataset.left_out,
            "pixels": {"ood": first.seen[True], "in_distribution": first.seen[False]},
            "sampling": f"uniform bottom-k sample of at most {capacity // 2} pixels per class, weighted back "
                        "to the full class counts (exact when the data is smaller)"}
    summary = {"meta": meta, "scores": results, **({"mask": mask} if mask is not None else {})}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    split = f" ({left_out_line(dataset)})" if dataset.left_out else ""
    lines = [f"# {dataset.name}: {len(dataset.samples)} images{split}", "", str(protocol["text"]), "",
             "| score | AP (%) | AUROC (%) | FPR95 (%) |", "|---|---:|---:|---:|"]
    for name, m in results.items():
        lines.append(f"| {name} | {100 * m['AP']:.2f} | {100 * m['AUROC']:.2f} | {100 * m['FPR95']:.2f} |")
    lines += ["", f"Pixels: {first.seen[True]} OOD, {first.seen[False]} in-distribution (void ignored). "
              f"Parameters: {params}. {meta['sampling']}."]
    if mask is not None:
        lines += mask_table(mask)
    (out / "results.md").write_text("\n".join(lines) + "\n")


def _plot_points(n: int, most: int = 4000) -> np.ndarray:
    """Indices of at most `most` evenly spaced points of an n-point curve, ends included."""
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(np.int64))


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
        keep = _plot_points(c.fpr.size)  # a curve has a point per distinct score: thin it for drawing
        ax_roc.plot(c.fpr[keep], c.tpr[keep], label=name)
        keep = _plot_points(c.recall.size)
        ax_pr.plot(c.recall[keep], c.precision[keep], label=name)
        fig, ax = plt.subplots(figsize=(6, 4))
        bins = np.linspace(min(neg.min(), pos.min()), max(neg.max(), pos.max()), 100)
        ax.hist(neg, bins=bins, density=True, alpha=0.6, label="in-distribution")
        ax.hist(pos, bins=bins, density=True, alpha=0.6, label="OOD")
        ax.set(xlabel=f"{name} (higher = more OOD)", ylabel="density", title=name)
        ax.legend(loc="upper right")
        fig.tight_layout()
        fig.savefig(out / f"hist_{name}.png", dpi=100)
        plt.close(fig)
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax_pr.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    for fig, ax, name in ((fig_roc, ax_roc, "roc.png"), (fig_pr, ax_pr, "pr.png")):
        ax.legend(fontsize=7, loc="lower right" if name == "roc.png" else "upper right")
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
