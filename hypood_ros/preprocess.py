"""Camera frame -> network input: resize to the backend's (H, W) and ImageNet-normalize, on its device."""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from hypood_ros.errors import FrameError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_rgb(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise FrameError(f"expected an HxWx3 uint8 RGB image, got {desc}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise FrameError(f"empty image {frame.shape[1]}x{frame.shape[0]}")
    return frame


def preprocess(frames: Sequence[np.ndarray], size: Tuple[int, int], device: torch.device | str) -> torch.Tensor:
    """HxWx3 uint8 RGB frames (equal sizes) -> float32 [B,3,H,W] ready for `Backend.run`.

    The upload happens as uint8 (4x less traffic than float) and the resize runs on the device.
    Downscaling uses antialiasing so thin structures do not alias into the patch grid.
    """
    frames = [check_rgb(f) for f in frames]
    if len({f.shape for f in frames}) != 1:
        raise FrameError("frames of one batch must have the same size")
    # Message views can be strided (row padding, BGR flips) or read-only (a view of the message's bytes):
    # one host copy makes them uploadable, and torch never receives a read-only array.
    if len(frames) > 1:
        batch = torch.from_numpy(np.stack(frames))
    else:
        frame = frames[0] if frames[0].flags.writeable else frames[0].copy()
        batch = torch.from_numpy(np.ascontiguousarray(frame)[None])
    x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    height, width = int(size[0]), int(size[1])
    if tuple(x.shape[2:]) != (height, width):
        downscale = height < x.shape[2] or width < x.shape[3]
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=downscale)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
