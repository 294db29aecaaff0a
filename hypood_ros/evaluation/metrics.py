"""Pixel-level OOD metrics with OOD as the positive class, void pixels ignored (SMIYC definitions).

AP is the step-wise area under precision-recall (no interpolation); AUROC the trapezoidal area under
ROC; FPR95 the false-positive rate at the first threshold (descending) whose TPR reaches 95%. Ties in
the scores are one threshold, as in scikit-learn.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from hypood_ros.errors import HypoodError

IGNORE = 255


@dataclass
class Curves:
    fpr: np.ndarray
    tpr: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


def _valid(scores: np.ndarray, labels: np.ndarray, ignore: int = IGNORE) -> Tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores).ravel(), np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise HypoodError(f"{scores.size} scores but {labels.size} labels")
    keep = labels != ignore
    scores, labels = scores[keep].astype(np.float64), labels[keep]
    bad = np.setdiff1d(np.unique(labels), [0, 1])
    if bad.size:
        raise HypoodError(f"labels must be 0 (in-distribution), 1 (OOD) or {ignore} (void); found {bad.tolist()}")
    if not np.isfinite(scores).all():
        raise HypoodError("scores contain NaN or infinity")
    return scores, labels.astype(bool)


def curves(scores: np.ndarray, labels: np.ndarray, ignore: int = IGNORE) -> Curves:
    scores, positive = _valid(scores, labels, ignore)
    if positive.all() or not positive.any():
        raise HypoodError("metrics need both OOD and in-distribution pixels")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of every distinct score
    tps = np.cumsum(y)[last].astype(np.float64)
    fps = (last + 1) - tps
    tpr, fpr = tps / tps[-1], fps / fps[-1]
    precision = tps / (tps + fps)
    return Curves(np.r_[0.0, fpr], np.r_[0.0, tpr], precision, tpr)


def ood_metrics(scores: np.ndarray, labels: np.ndarray, ignore: int = IGNORE) -> Dict[str, float]:
    c = curves(scores, labels, ignore)
    ap = float(np.sum(np.diff(np.r_[0.0, c.recall]) * c.precision))
    auroc = float(np.trapezoid(c.tpr, c.fpr) if hasattr(np, "trapezoid") else np.trapz(c.tpr, c.fpr))
    fpr95 = float(c.fpr[np.searchsorted(c.tpr, 0.95, side="left")])
    return {"AP": ap, "AUROC": auroc, "FPR95": fpr95}


class PixelSample:
    """Bounded memory over a whole dataset: a uniform random sample of at most `capacity` valid pixels.

    Method: per class (OOD and in-distribution separately, up to capacity/2 each), every pixel gets a
    random key from a seeded generator and the pixels with the smallest keys are kept (bottom-k sampling:
    a uniform sample without replacement of everything seen). While a class has fewer pixels than its
    share, all are kept and the metrics are exact. Each kept pixel is weighted by seen/kept of its class,
    so the class balance, and with it AP, is that of the full data.
    """

    def __init__(self, capacity: int = 4_000_000, seed: int = 0) -> None:
        self.share = capacity // 2
        self.rng = np.random.default_rng(seed)
        self.values = {False: np.empty(0, np.float32), True: np.empty(0, np.float32)}
        self.keys = {False: np.empty(0), True: np.empty(0)}
        self.seen = {False: 0, True: 0}

    def add(self, scores: np.ndarray, labels: np.ndarray, ignore: int = IGNORE) -> None:
        s, y = _valid(scores, labels, ignore)
        for cls in (False, True):
            new = s[y == cls].astype(np.float32)
            self.seen[cls] += new.size
            values = np.concatenate([self.values[cls], new])
            keys = np.concatenate([self.keys[cls], self.rng.random(new.size)])
            if values.size > self.share:
                keep = np.argpartition(keys, self.share - 1)[: self.share]
                values, keys = values[keep], keys[keep]
            self.values[cls], self.keys[cls] = values, keys

    def merge(self, other: "PixelSample") -> None:
        """Take in another sample (another part of the data, its own seed): the pixels with the smallest keys of
        both, i.e. the sample this one would be had it seen the other's pixels too."""
        for cls in (False, True):
            self.seen[cls] += other.seen[cls]
            values = np.concatenate([self.values[cls], other.values[cls]])
            keys = np.concatenate([self.keys[cls], other.keys[cls]])
            if values.size > self.share:
                keep = np.argpartition(keys, self.share - 1)[: self.share]
                values, keys = values[keep], keys[keep]
            self.values[cls], self.keys[cls] = values, keys

    def weights(self) -> Tuple[float, float]:
        """How many pixels each kept in-distribution and OOD pixel stands for (seen / kept; 1 when exact)."""
        return tuple(self.seen[c] / self.values[c].size if self.values[c].size else 1.0 for c in (False, True))

    def metrics(self) -> Dict[str, float]:
        neg, pos = self.values[False], self.values[True]
        if self.seen[False] == neg.size and self.seen[True] == pos.size:
            return ood_metrics(np.r_[neg, pos], np.r_[np.zeros(neg.size, np.uint8), np.ones(pos.size, np.uint8)])
        # Replicating counts is equivalent to weighting each sampled pixel by seen/kept of its class.
        return weighted_metrics(neg, pos, *self.weights())


def ranked_counts(neg: np.ndarray, pos: np.ndarray, w_neg: float = 1.0,
                  w_pos: float = 1.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct scores of in-distribution (`neg`) and OOD (`pos`) pixels, highest first (float64), and
    the weighted counts of OOD (tps) and in-distribution (fps) pixels scoring at least each of them."""
    scores = np.r_[neg, pos].astype(np.float64)
    weight = np.r_[np.full(neg.size, w_neg), np.full(pos.size, w_pos)]
    positive = np.r_[np.zeros(neg.size, bool), np.ones(pos.size, bool)]
    order = np.argsort(-scores, kind="mergesort")
    s, y, w = scores[order], positive[order], weight[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    return s[last], np.cumsum(w * y)[last], np.cumsum(w * ~y)[last]


def weighted_metrics(neg: np.ndarray, pos: np.ndarray, w_neg: float, w_pos: float) -> Dict[str, float]:
    _, tps, fps = ranked_counts(neg, pos, w_neg, w_pos)
    tpr, fpr = np.r_[0.0, tps / tps[-1]], np.r_[0.0, fps / fps[-1]]
    precision = tps / (tps + fps)
    ap = float(np.sum(np.diff(tpr) * precision))
    auroc = float(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr))
    return {"AP": ap, "AUROC": auroc, "FPR95": float(fpr[np.searchsorted(tpr, 0.95, side="left")])}
