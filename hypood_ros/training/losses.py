"""Stage losses. The LLR comes from the scores registry: training and evaluation share its definition."""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from hypood_ros.head import HeadParams
from hypood_ros.scores import ScoreInputs, score_map


def segmentation_loss(outputs: Dict[str, torch.Tensor], labels: torch.Tensor, ignore: int) -> torch.Tensor:
    logits = F.interpolate(outputs["seg_logits"].float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, labels, ignore_index=ignore)


def llr_loss(outputs: Dict[str, torch.Tensor], head: HeadParams, labels: torch.Tensor, ood_label: int,
             ignore: int) -> torch.Tensor:
    """BCE on LLR = u_1 - u_0 - max_k (f+b)_k (UEM paper eq. 12), target 1 on pasted outliers.

    The logits and the UEM logits are upsampled to the label size before the LLR is formed
    (`score_resolution = image`), the order of the UEM authors' training step; value and gradients match
    their formula (tests/test_losses.py). Cityscapes' own void pixels are ignored; every other pixel is an
    inlier.
    """
    inputs = ScoreInputs(outputs["seg_logits"], outputs["embedding"], head, outputs["uem_logits"])
    llr, _ = score_map("uem_llr", inputs, labels.shape[-2:], "image")
    valid = labels != ignore
    target = (labels == ood_label).float()
    return F.binary_cross_entropy_with_logits(llr[valid], target[valid])
