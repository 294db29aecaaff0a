"""Checking a device name before anything is loaded on it, so a typo is one line and not a torch traceback."""
from __future__ import annotations

import re

import torch

from hypood_ros.errors import ConfigError

_PATTERN = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def check_device(name: str) -> torch.device:
    """`cpu`, `cuda` or `cuda:N` as a torch.device; ConfigError for unknown names and absent GPUs."""
    text = str(name).strip().lower()
    match = _PATTERN.match(text)
    if match is None or (match.group(1) == "cpu" and match.group(2) not in (None, "0")):
        raise ConfigError(f"unknown device {name!r}: use cpu, cuda or cuda:N")
    if match.group(1) == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but this machine has no usable CUDA device "
                          "(or torch was built without CUDA): use cpu")
    index = int(match.group(2) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"device {name!r} does not exist: this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)
