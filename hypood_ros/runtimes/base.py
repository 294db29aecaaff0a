"""The one interface every runtime backend implements.

The frame pipeline only talks to this interface, so PyTorch, ONNX Runtime and TensorRT are
interchangeable. A backend never imports ROS.
"""
from __future__ import annotations

import abc
from typing import Dict, Optional, Tuple

import torch

from hypood_ros.classes import ClassInfo, default_classes
from hypood_ros.errors import BackendError
from hypood_ros.head import HeadParams

#: Names of the network outputs, identical in the PyTorch model, the ONNX graph and the engine.
OUTPUT_NAMES: Tuple[str, str, str] = ("seg_logits", "embedding", "uem_logits")
INPUT_NAME = "image"


class Backend(abc.ABC):
    """A loaded network that maps a normalized image batch to named outputs.

    `run` takes float32 [B,3,H,W] (ImageNet-normalized, H and W multiples of 14) on `device` and
    returns {"seg_logits": [B,K,4H/14,4W/14], "embedding": [B,D,4H/14,4W/14],
    "uem_logits": [B,2,H/14,W/14]} on `device`. Backends with a fixed input size expose it in
    `input_shape`; the pipeline resizes frames to it.
    """

    name: str = "base"
    dynamic_batch: bool = False  # True: any B, only (3, H, W) is fixed
    #: arithmetic of the network's heavy layers (`hypood_ros.runtimes.precision.PRECISIONS`); reported by the node
    precision: str = "fp32"
    # Set by every implementation's constructor.
    _device: torch.device
    _shape: Tuple[int, int, int, int]
    _head: HeadParams

    @property
    def device(self) -> torch.device:
        """Where `run` expects its input and leaves its outputs."""
        return self._device

    @property
    def input_shape(self) -> Tuple[int, int, int, int]:
        """(B, 3, H, W) the backend was built or configured for."""
        return self._shape

    @property
    def batch_range(self) -> Tuple[int, Optional[int]]:
        """(smallest, largest) batch `run` takes; largest None: any. A fixed-batch graph or engine takes exactly
        its B; the pipeline splits a larger set of frames into runs of that size and pads the last one."""
        return (1, None) if self.dynamic_batch else (int(self._shape[0]), int(self._shape[0]))

    @property
    def head(self) -> HeadParams:
        """Linear-head class-weight norms and bias, on `device`."""
        return self._head

    @property
    def classes(self) -> ClassInfo:
        """Class names and colours: the model file's own where it carries them, else the default for K."""
        info = getattr(self, "_classes", None)
        return info if info is not None else default_classes(int(self._head.weight_norm.shape[0]))

    def check_input(self, batch: torch.Tensor) -> None:
        fixed = 1 if self.dynamic_batch else 0
        if batch.dim() != 4 or tuple(batch.shape[fixed:]) != tuple(self._shape[fixed:]):
            raise BackendError(f"input of shape {tuple(batch.shape)} does not match the {self.name} backend's "
                               f"{tuple(self._shape)}")

    @abc.abstractmethod
    def run(self, batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Run the network on one batch."""

    def close(self) -> None:
        """Release device memory and handles. Safe to call twice."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
