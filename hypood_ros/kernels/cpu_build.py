"""The fused kernel's own source built with the host C++ compiler, to verify it where there is no GPU.

Not a backend (CPU tensors use the scores registry): this build exists so that the kernel's arithmetic,
its indexing over the launcher's grid and the launcher's argument packing are tested in CI. The
library is compiled on first use into the kernel cache (no binary is shipped), loaded with ctypes, and
runs the launches `launch.pack_fused` produces, after checking each packed argument type against the
kernel's declared parameter types.
"""
from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import torch

from hypood_ros.kernels import fused
from hypood_ros.kernels.compile import SOURCE_PATH, KernelCompileError, cache_dir
from hypood_ros.kernels.launch import KernelLaunch
from hypood_ros.native_build import build_library, compiler  # noqa: F401 (compiler: re-exported for the tests)

KERNEL_DIR = SOURCE_PATH.parent
SOURCES = (SOURCE_PATH, KERNEL_DIR / "cpu_shim.h", KERNEL_DIR / "cpu_launch.cpp")

_lock = threading.Lock()
_loaded: Dict[str, "CpuKernels"] = {}


class KernelArgumentError(KernelCompileError):
    """The packed arguments do not match the kernel's parameters."""


def build(directory: Optional[Path] = None) -> Path:
    """Compile the shared library (cached by source, compiler and flags); returns its path."""
    directory = Path(directory) if directory is not None else cache_dir() / "cpu"
    try:
        return build_library("fused_scores", KERNEL_DIR / "cpu_launch.cpp", SOURCES, directory, include=KERNEL_DIR)
    except FileNotFoundError:
        raise KernelCompileError("no host C++ compiler found (set CXX): the CPU build of the kernel needs "
                                 "one") from None
    except RuntimeError as exc:
        raise KernelCompileError(f"host build of the kernel failed:\n{exc}") from None


class CpuKernels:
    """The loaded library: kernel names, their parameter types, and launches over a whole grid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lib = ctypes.CDLL(str(path))
        self._lib.hypood_cpu_kernels.restype = ctypes.c_char_p
        self._lib.hypood_cpu_signature.restype = ctypes.c_char_p
        self._lib.hypood_cpu_signature.argtypes = [ctypes.c_char_p]
        self._lib.hypood_cpu_launch.restype = ctypes.c_int
        self._lib.hypood_cpu_launch.argtypes = [ctypes.c_char_p] + [ctypes.c_uint] * 6 + [ctypes.c_void_p]
        self._lib.hypood_cpu_half_to_float.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong]

    def names(self) -> Tuple[str, ...]:
        return tuple(self._lib.hypood_cpu_kernels().decode().split(","))

    def signature(self, name: str) -> Tuple[str, ...]:
        s = self._lib.hypood_cpu_signature(name.encode())
        if s is None:
            raise KernelArgumentError(f"the kernel source has no kernel {name!r}")
        return tuple(s.decode().split(","))

    def launch(self, launch: KernelLaunch, check_types: bool = True) -> None:
        """Run every (block, thread) of the launch's grid, reading the packed values as the kernel does."""
        if check_types and self.signature(launch.name) != launch.types:
            raise KernelArgumentError(
                f"{launch.name}: packed ({', '.join(launch.types)}) but the kernel takes "
                f"({', '.join(self.signature(launch.name))})"
            )
        if launch.grid == 0:
            return
        params = (ctypes.c_void_p * len(launch.values))(*[ctypes.addressof(v) for v in launch.values])
        if self._lib.hypood_cpu_launch(launch.name.encode(), launch.grid, 1, 1, launch.block, 1, 1, params) != 0:
            raise KernelArgumentError(f"the kernel source has no kernel {launch.name!r}")

    def half_to_float(self, halves: torch.Tensor) -> torch.Tensor:
        """The shim's fp16 conversion applied to a CPU float16 tensor."""
        halves = halves.contiguous()
        out = torch.empty(halves.shape, dtype=torch.float32)
        self._lib.hypood_cpu_half_to_float(halves.data_ptr(), out.data_ptr(), halves.numel())
        return out


def load(directory: Optional[Path] = None) -> CpuKernels:
    """Build if needed and load (once per library file)."""
    with _lock:
        path = build(directory)
        key = str(path)
        if key not in _loaded:
            _loaded[key] = CpuKernels(path)
        return _loaded[key]


def run_plan(launches: Sequence[KernelLaunch], device: torch.device, kernels: Optional[CpuKernels] = None) -> None:
    """The CPU counterpart of `launch.launch_plan`: same launches, same order."""
    if device.type != "cpu":
        raise ValueError("the CPU build of the kernel reads CPU tensors only")
    kernels = kernels or load()
    for launch in launches:
        kernels.launch(launch)


def cpu_kernel_fused_scores(a: fused.FusedArgs, out: Optional[fused.FusedScores] = None,
                            kernels: Optional[CpuKernels] = None) -> fused.FusedScores:
    """`fused_scores` with the CUDA path's preparation and packing, executed by the CPU build."""
    kernels = kernels or load()
    return fused.kernel_fused_scores(a, execute=lambda launches, device: run_plan(launches, device, kernels), out=out)
