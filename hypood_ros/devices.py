"""Device names as users type them: `cpu`, `cuda` or `cuda:N`, checked once for the CLI and the node.

`parse_device` checks the spelling without importing torch, so a typo is refused before anything
loads; `check_device` asks torch whether the device exists on this machine.
"""
from __future__ import annotations

import re

from hypood_ros.errors import BackendError, ConfigError

_CUDA = re.compile(r"cuda(?::(\d+))?")
#: Spellings people use for a GPU that torch does not accept, each with what to write instead.
_HINTS = {"gpu": "cuda", "nvidia": "cuda", "cuda0": "cuda:0", "mps": "cpu or cuda", "auto": "cpu or cuda"}


def parse_device(value: str) -> str:
    """The device name in its canonical form ('cpu', 'cuda', 'cuda:N'); ConfigError for anything else."""
    text = str(value).strip().lower()
    if text == "cpu" or _CUDA.fullmatch(text):
        return text
    hint = _HINTS.get(text)
    if hint is None and re.fullmatch(r"(gpu|cuda)\s*[:=]?\s*\d+", text):
        hint = "cuda:" + re.sub(r"\D", "", text)
    advice = f"; use {hint}" if hint else ""
    raise ConfigError(f"unknown device {value!r}{advice} (devices are cpu, cuda or cuda:N)")


def check_device(value: str) -> str:
    """parse_device, then BackendError when this machine has no such CUDA device."""
    name = parse_device(value)
    match = _CUDA.fullmatch(name)
    if match is None:
        return name
    import torch

    if not torch.cuda.is_available():
        raise BackendError(f"device {name} requested but no CUDA device is available here; use cpu")
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise BackendError(f"device {name} requested but this machine has {count} CUDA device(s) "
                           f"(cuda:0 to cuda:{count - 1})")
    return name
