"""The linear head's parameters that the scores need, and their one JSON form.

Neutral ground: the model produces `HeadParams`, the runtimes carry them in ONNX metadata and engine
sidecars, the scores and the fused kernel read them. Keeping them here means none of those packages
has to import another just for this type.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List

import torch

from hypood_ros.errors import BackendError

#: Key of the head parameters in an exported ONNX file's metadata.
HEAD_KEY = "hypood_ros.head"


@dataclass(frozen=True)
class HeadParams:
    """What the scores need from the linear head besides the network outputs.

    weight_norm: ||M_k|| per class, shape [K]; bias: b_k, shape [K]. Both float32.
    """

    weight_norm: torch.Tensor
    bias: torch.Tensor

    def to(self, device: torch.device | str) -> "HeadParams":
        return HeadParams(self.weight_norm.to(device), self.bias.to(device))


def head_to_dict(head: HeadParams) -> Dict[str, List[float]]:
    return {"weight_norm": head.weight_norm.tolist(), "bias": head.bias.tolist()}


def head_from_dict(data: Any, source: str) -> HeadParams:
    """HeadParams from {"weight_norm": [...], "bias": [...]}; BackendError naming `source` otherwise."""
    try:
        if not isinstance(data, dict):
            raise TypeError(f"expected an object, got {type(data).__name__}")
        head = HeadParams(torch.tensor(data["weight_norm"], dtype=torch.float32),
                          torch.tensor(data["bias"], dtype=torch.float32))
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise BackendError(f"{source}: invalid head metadata: {exc}") from None
    if head.weight_norm.dim() != 1 or head.weight_norm.shape != head.bias.shape or head.bias.numel() == 0:
        raise BackendError(f"{source}: invalid head metadata: 'weight_norm' and 'bias' must be equally long lists")
    return head


def head_to_json(head: HeadParams) -> str:
    return json.dumps(head_to_dict(head))


def head_from_json(text: str, source: str) -> HeadParams:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BackendError(f"{source}: invalid head metadata: {exc}") from None
    return head_from_dict(data, source)
