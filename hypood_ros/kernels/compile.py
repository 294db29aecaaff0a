"""Run-time compilation of the fused score kernel with NVRTC (cuda-python), cached per architecture.

Compiling needs no GPU: CI checks that the source builds for every supported architecture.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict, Tuple

from hypood_ros.errors import HypoodError
from hypood_ros.native_build import cache_dir

SOURCE_PATH = Path(__file__).with_name("fused_scores.cu")
#: Jetson Orin is sm_87; desktop GPUs from Turing (sm_75) on.
SUPPORTED_ARCHS = ("sm_75", "sm_80", "sm_86", "sm_87", "sm_89", "sm_90")

_memory_cache: Dict[Tuple[str, str, str], bytes] = {}


class KernelCompileError(HypoodError):
    """NVRTC is missing or rejected the kernel source."""


def _nvrtc():
    try:
        from cuda.bindings import nvrtc  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import nvrtc  # older cuda-python layout
        except ImportError:
            raise KernelCompileError(
                "NVRTC is not available: install cuda-python and nvidia-cuda-nvrtc matching your CUDA driver"
            ) from None
    return nvrtc


def _check(result, what: str) -> tuple:
    err, rest = result[0], result[1:]
    if int(err) != 0:
        raise KernelCompileError(f"{what} failed: {err}")
    return rest


def source() -> bytes:
    return SOURCE_PATH.read_bytes()


def compile_kernel(arch: str, output: str = "cubin", use_disk_cache: bool = True) -> bytes:
    """Compile to `cubin` (for `sm_XY`) or `ptx` (for `compute_XY` or `sm_XY`); returns the image bytes."""
    if output not in ("cubin", "ptx"):
        raise ValueError("output must be 'cubin' or 'ptx'")
    code = source()
    digest = hashlib.sha256(code).hexdigest()[:16]
    key = (digest, arch, output)
    if key in _memory_cache:
        return _memory_cache[key]
    disk = cache_dir() / f"fused_scores-{digest}-{arch}.{output}"
    if use_disk_cache and disk.is_file():
        image = disk.read_bytes()
        _memory_cache[key] = image
        return image

    nvrtc = _nvrtc()
    (prog,) = _check(nvrtc.nvrtcCreateProgram(code, b"fused_scores.cu", 0, [], []), "nvrtcCreateProgram")
    try:
        arch_flag = arch if output == "cubin" else arch.replace("sm_", "compute_")
        opts = [f"--gpu-architecture={arch_flag}".encode(), b"--std=c++17"]
        compiled = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        (log_size,) = _check(nvrtc.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
        # Writable buffers: NVRTC fills them in place (never hand it an immutable bytes object).
        log = bytearray(log_size)
        nvrtc.nvrtcGetProgramLog(prog, log)
        if int(compiled[0]) != 0:
            text = bytes(log).rstrip(b"\x00").decode(errors="replace").strip()
            raise KernelCompileError(f"kernel compilation for {arch} failed:\n{text}")
        if output == "cubin":
            (size,) = _check(nvrtc.nvrtcGetCUBINSize(prog), "nvrtcGetCUBINSize")
            buffer = bytearray(size)
            _check(nvrtc.nvrtcGetCUBIN(prog, buffer), "nvrtcGetCUBIN")
        else:
            (size,) = _check(nvrtc.nvrtcGetPTXSize(prog), "nvrtcGetPTXSize")
            buffer = bytearray(size)
            _check(nvrtc.nvrtcGetPTX(prog, buffer), "nvrtcGetPTX")
        image = bytes(buffer)
    finally:
        nvrtc.nvrtcDestroyProgram(prog)

    _memory_cache[key] = image
    if use_disk_cache:
        try:
            disk.parent.mkdir(parents=True, exist_ok=True)
            tmp = disk.with_suffix(disk.suffix + f".{os.getpid()}.tmp")
            tmp.write_bytes(image)
            os.replace(tmp, disk)
        except OSError:
            pass  # a read-only home only costs a recompile next time
    return image
