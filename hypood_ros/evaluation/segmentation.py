"""Semantic segmentation quality: the confusion matrix over train ids and the mean IoU taken from it.

Shared by training's validation, the model card and the demo, so every mIoU this project reports is the
same computation (void pixels, label 255, are left out; classes absent from both are left out of the mean).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from hypood_ros.evaluation.metrics import IGNORE


def confusion(pred: np.ndarray, label: np.ndarray, classes: int) -> np.ndarray:
    """int64 [classes, classes]: rows are the label, columns the prediction; void pixels left out."""
    keep = label != IGNORE
    return np.bincount(classes * label[keep].astype(np.int64) + pred[keep], minlength=classes * classes
                       ).reshape(classes, classes)


def miou(matrix: np.ndarray) -> Tuple[float, np.ndarray]:
    """(mean IoU over the classes present in the label or the prediction, IoU per class, NaN where absent)."""
    inter = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0, iou
