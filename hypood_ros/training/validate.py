"""Sliding-window validation (mIoU over the 19 train ids), as the official evaluation."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from hypood_ros.evaluation.segmentation import confusion, miou
from hypood_ros.training.cityscapes import normalize, read_label


def window_starts(size: int, window: int, stride: int):
    if size <= window:
        return [0]
    starts = list(range(0, size - window, stride))
    return starts + [size - window]


@torch.inference_mode()
def sliding_window_logits(model, x: torch.Tensor, window: Sequence[int], stride: Sequence[int]) -> torch.Tensor:
    """x [1,3,H,W] -> logits [1,K,H,W] averaged over overlapping windows (small images are padded)."""
    _, _, h, w = x.shape
    wh, ww = window
    pad_h, pad_w = max(0, wh - h), max(0, ww - w)
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    H, W = x.shape[2:]
    total = None
    count = torch.zeros((1, 1, H, W), device=x.device)
    for y in window_starts(H, wh, stride[0]):
        for x0 in window_starts(W, ww, stride[1]):
            crop = x[:, :, y: y + wh, x0: x0 + ww]
            logits = F.interpolate(model(crop)["seg_logits"].float(), size=(wh, ww), mode="bilinear",
                                   align_corners=False)
            if total is None:
                total = torch.zeros((1, logits.shape[1], H, W), device=x.device)
            total[:, :, y: y + wh, x0: x0 + ww] += logits
            count[:, :, y: y + wh, x0: x0 + ww] += 1
    return (total / count)[:, :, :h, :w]


def evaluate_miou(model, pairs, window, stride, device, classes: int = 19) -> float:
    from hypood_ros.images import read_image

    matrix = np.zeros((classes, classes), np.int64)
    model.eval()
    for image, label_path in pairs:
        x = normalize(read_image(image))[None].to(device)
        pred = sliding_window_logits(model, x, window, stride).argmax(1)[0].cpu().numpy()
        matrix += confusion(pred, read_label(label_path), classes)
    return miou(matrix)[0]
