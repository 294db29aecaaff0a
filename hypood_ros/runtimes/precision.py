"""Reduced precision on the CPU: which instructions carry bf16 here, and the names of every precision.

bf16 pays on a CPU only where it has bf16 arithmetic (x86: AVX-512 BF16 or AMX; Arm: the BF16
extension); elsewhere oneDNN emulates it more slowly than fp32, so it is refused with one line rather
than run slowly. int8 is ONNX Runtime's (`hypood_ros.runtimes.quantize`); it runs on any CPU.
"""
from __future__ import annotations

import json
import platform
from typing import Dict, Optional

from hypood_ros.errors import BackendError

#: The ONNX metadata key of a quantized model's record (`hypood_ros.runtimes.quantize` writes it).
PRECISION_KEY = "hypood_ros.precision"
#: What a backend reports as its `precision`: the arithmetic of the network's heavy layers.
PRECISIONS = ("fp32", "fp16", "bf16", "int8-dynamic", "int8-static")
#: CPU features (as torch's cpuinfo names them) that execute bf16 dot products natively.
BF16_FEATURES = ("amx_bf16", "avx512_bf16")


def cpu_capability() -> Dict[str, object]:
    """The CPU's features as PyTorch's cpuinfo reports them (empty where this torch cannot say)."""
    import torch

    probe = getattr(torch._C._cpu, "_get_cpu_capability", None)  # private, present since torch 2.4
    try:
        return dict(probe()) if probe else {}
    except Exception:  # a torch without cpuinfo for this CPU
        return {}


def _arm_bf16() -> bool:
    """aarch64: the BF16 extension, from the kernel's feature list."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("Features") and "bf16" in line.split() for line in f)
    except OSError:
        return False


def bf16_instructions(capability: Optional[Dict[str, object]] = None) -> str:
    """The native bf16 instructions of this CPU (e.g. "avx512_bf16"), or "" where it has none."""
    capability = cpu_capability() if capability is None else capability
    for feature in BF16_FEATURES:
        if capability.get(feature):
            return feature
    if capability.get("architecture", platform.machine()) in ("aarch64", "arm64") and _arm_bf16():
        return "bf16"
    return ""


def check_bf16(capability: Optional[Dict[str, object]] = None) -> str:
    """The instructions bf16 will use; a CPU without any is refused with one line."""
    capability = cpu_capability() if capability is None else capability
    found = bf16_instructions(capability)
    if not found:
        name = capability.get("cpu_name") or platform.processor() or platform.machine()
        raise BackendError(f"bf16 needs a CPU with bf16 instructions (AVX-512 BF16, AMX or Arm BF16); this one "
                           f"({name}) has none: run in fp32, or int8 with `hypood export --int8`")
    return found


def recorded_precision(meta: Dict[str, str], input_type: str) -> str:
    """The precision an ONNX file's metadata records: its int8 record, else what its input type says."""
    if PRECISION_KEY in meta:
        try:
            return str(json.loads(meta[PRECISION_KEY])["precision"])
        except (ValueError, KeyError, TypeError):
            return "unreadable"
    return "fp16" if "float16" in input_type else "fp32"
