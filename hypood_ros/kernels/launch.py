"""Loading and launching the compiled kernel with the CUDA driver API on torch's current stream.

Tensors are read and written in place through their device pointers: no copies, no host sync.
"""
from __future__ import annotations

import ctypes
import threading
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from hypood_ros.kernels.compile import KernelCompileError, compile_kernel

THREADS_PER_BLOCK = 256
_lock = threading.Lock()
_functions: Dict[int, Tuple[object, object, object, object]] = {}  # device -> (ctx, module, f32, f16)


def _driver():
    try:
        from cuda.bindings import driver
    except ImportError:
        try:
            from cuda import cuda as driver
        except ImportError:
            raise KernelCompileError("cuda-python is not installed; the fused kernel cannot be loaded") from None
    return driver


def _ok(result, what: str):
    err = result[0]
    if int(err) != 0:
        raise KernelCompileError(f"{what} failed: {err}")
    return result[1] if len(result) == 2 else result[1:]


def _device_functions(device: torch.device):
    index = device.index if device.index is not None else torch.cuda.current_device()
    with _lock:
        if index in _functions:
            return _functions[index]
        drv = _driver()
        _ok(drv.cuInit(0), "cuInit")
        with torch.cuda.device(index):
            torch.cuda.current_stream()  # makes torch create and bind the device's primary context
            cu_device = _ok(drv.cuDeviceGet(index), "cuDeviceGet")
            ctx = _ok(drv.cuDevicePrimaryCtxRetain(cu_device), "cuDevicePrimaryCtxRetain")
            _ok(drv.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
            major, minor = torch.cuda.get_device_capability(index)
            image = np.frombuffer(compile_kernel(f"sm_{major}{minor}", "cubin"), dtype=np.uint8)
            module = _ok(drv.cuModuleLoadData(image.ctypes.data), "cuModuleLoadData")
            f32 = _ok(drv.cuModuleGetFunction(module, b"fused_scores_f32"), "cuModuleGetFunction")
            f16 = _ok(drv.cuModuleGetFunction(module, b"fused_scores_f16"), "cuModuleGetFunction")
        _functions[index] = (ctx, module, f32, f16)
        return _functions[index]


def _pointer(t: Optional[torch.Tensor]) -> ctypes.c_void_p:
    return ctypes.c_void_p(0 if t is None else t.data_ptr())


def launch_fused(
    embedding: torch.Tensor,
    logits: torch.Tensor,
    wfac: torch.Tensor,
    bias: torch.Tensor,
    uem: Optional[torch.Tensor],
    lam: float,
    threshold: Optional[float],
    outputs: Sequence[Optional[torch.Tensor]],
) -> None:
    """Launch on the current stream. Inputs contiguous, same dtype (fp16/fp32); outputs preallocated."""
    class_ids, energy, llr, mask = outputs
    drv = _driver()
    ctx, _, f32, f16 = _device_functions(logits.device)
    current = drv.cuCtxGetCurrent()
    if int(current[0]) != 0 or int(current[1]) != int(ctx):
        _ok(drv.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")  # inference threads may not have it bound yet
    func = f16 if logits.dtype == torch.float16 else f32
    b, d, h, w = embedding.shape
    k = logits.shape[1]
    hu, wu = (uem.shape[2], uem.shape[3]) if uem is not None else (1, 1)
    args = [
        _pointer(embedding), _pointer(logits), _pointer(wfac), _pointer(bias), _pointer(uem),
        ctypes.c_int(b), ctypes.c_int(d), ctypes.c_int(k), ctypes.c_int(h), ctypes.c_int(w),
        ctypes.c_int(hu), ctypes.c_int(wu), ctypes.c_float(lam),
        ctypes.c_float(0.0 if threshold is None else threshold), ctypes.c_int(threshold is not None),
        _pointer(class_ids), _pointer(energy), _pointer(llr), _pointer(mask),
    ]
    params = np.array([ctypes.addressof(a) for a in args], dtype=np.uint64)
    pixels = b * h * w
    grid = (pixels + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
    stream = drv.CUstream(torch.cuda.current_stream(logits.device).cuda_stream)
    _ok(
        (drv.cuLaunchKernel(func, grid, 1, 1, THREADS_PER_BLOCK, 1, 1, 0, stream, params.ctypes.data, 0)[0], None),
        "cuLaunchKernel",
    )
