"""Packing the kernel arguments (one function for every executor) and launching them with the CUDA driver API.

`pack_fused` turns tensors into the launches a call needs: kernel name, grid, block and the argument
list as (C type, ctypes value) pairs in the kernel's parameter order. `launch_plan` runs them on torch's
current stream, reading and writing the tensors in place through their device pointers (no copies, no
host sync); the CPU build of the same source (`cpu_build.run_plan`) runs the very same launches, so an
argument that the packer and the kernel disagree on fails there too.
"""
from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from hypood_ros.kernels.compile import KernelCompileError, compile_kernel

THREADS_PER_BLOCK = 256
#: Every kernel in fused_scores.cu, by the name the module exports.
KERNELS = ("fused_scores_f32", "fused_scores_f16", "embedding_norms_f32", "embedding_norms_f16",
           "fused_image_f32", "fused_image_f16")

_lock = threading.Lock()
_functions: Dict[int, Tuple[object, object, Dict[str, object]]] = {}  # device -> (ctx, module, name -> function)

#: The C element type a tensor's data pointer is passed as (fp16 travels as its 16 bits).
_ELEMENT = {torch.float32: "float", torch.float16: "unsigned short", torch.uint8: "unsigned char"}


@dataclass(frozen=True)
class KernelLaunch:
    """One kernel launch: 1-D grid of `grid` blocks of `block` threads, arguments in parameter order."""

    name: str
    grid: int
    block: int
    types: Tuple[str, ...]  # C parameter types the values are packed for, e.g. "const float*", "int"
    values: Tuple[object, ...]  # ctypes values (c_void_p / c_int / c_float)
    keep: Tuple[torch.Tensor, ...] = ()  # temporaries that must live until the launch is queued


class _Args:
    """Collects (C type, ctypes value) pairs; pointer types come from the tensor's dtype."""

    def __init__(self) -> None:
        self.types: List[str] = []
        self.values: List[object] = []

    def tensor(self, t: Optional[torch.Tensor], dtype: torch.dtype, const: bool) -> "_Args":
        if t is not None and (t.dtype != dtype or not t.is_contiguous()):
            got = f"{'' if t.is_contiguous() else 'non-contiguous '}{t.dtype}"
            raise ValueError(f"kernel argument must be a contiguous {dtype} tensor, got {got}")
        self.types.append(("const " if const else "") + _ELEMENT[dtype] + "*")
        self.values.append(ctypes.c_void_p(0 if t is None else t.data_ptr()))
        return self

    def ints(self, *values: int) -> "_Args":
        for v in values:
            self.types.append("int")
            self.values.append(ctypes.c_int(int(v)))
        return self

    def floats(self, *values: float) -> "_Args":
        for v in values:
            self.types.append("float")
            self.values.append(ctypes.c_float(float(v)))
        return self

    def launch(self, name: str, threads: int, keep: Tuple[torch.Tensor, ...] = ()) -> KernelLaunch:
        grid = (threads + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
        return KernelLaunch(name, grid, THREADS_PER_BLOCK, tuple(self.types), tuple(self.values), keep)


@dataclass(frozen=True)
class KernelInputs:
    """What the kernel reads, prepared (`fused.kernel_fused_scores`): inputs contiguous and of one dtype
    (fp16/fp32), the class-weight factors w_k^(eta-1) and the bias as float32."""
    embedding: torch.Tensor
    logits: torch.Tensor
    wfac: torch.Tensor
    bias: torch.Tensor
    uem: Optional[torch.Tensor]
    lam: float
    out_size: Optional[Tuple[int, int]] = None


def pack_fused(inputs: KernelInputs, outputs: Sequence[Optional[torch.Tensor]]) -> List[KernelLaunch]:
    """The launches for one call; outputs (class ids, energy, llr or None) preallocated.

    `out_size` None: one launch at the network grid. (H, W): the norm map pass, then one thread per
    output pixel sampling the network grid bilinearly.
    """
    embedding, logits, wfac, bias, uem = inputs.embedding, inputs.logits, inputs.wfac, inputs.bias, inputs.uem
    lam, out_size = inputs.lam, inputs.out_size
    class_ids, energy, llr = outputs
    dtype = logits.dtype
    suffix = "f16" if dtype == torch.float16 else "f32"
    b, d, h, w = embedding.shape
    k = logits.shape[1]
    hu, wu = (uem.shape[2], uem.shape[3]) if uem is not None else (1, 1)

    def tail(args: _Args) -> _Args:
        return (args.floats(lam).tensor(class_ids, torch.uint8, False).tensor(energy, torch.float32, False)
                .tensor(llr, torch.float32, False))

    if out_size is None:
        args = (_Args().tensor(embedding, dtype, True).tensor(logits, dtype, True)
                .tensor(wfac, torch.float32, True).tensor(bias, torch.float32, True).tensor(uem, dtype, True)
                .ints(b, d, k, h, w, hu, wu))
        return [tail(args).launch(f"fused_scores_{suffix}", b * h * w)]

    big_h, big_w = out_size
    norms = torch.empty((b, h, w), dtype=torch.float32, device=logits.device)
    first = (_Args().tensor(embedding, dtype, True).ints(b, d, h, w).tensor(norms, torch.float32, False)
             .launch(f"embedding_norms_{suffix}", b * h * w, keep=(norms,)))
    args = (_Args().tensor(norms, torch.float32, True).tensor(logits, dtype, True)
            .tensor(wfac, torch.float32, True).tensor(bias, torch.float32, True).tensor(uem, dtype, True)
            .ints(b, k, h, w, big_h, big_w, hu, wu))
    return [first, tail(args).launch(f"fused_image_{suffix}", b * big_h * big_w, keep=(norms,))]


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
            functions = {name: _ok(drv.cuModuleGetFunction(module, name.encode()), "cuModuleGetFunction")
                         for name in KERNELS}
        _functions[index] = (ctx, module, functions)
        return _functions[index]


def launch_plan(launches: Sequence[KernelLaunch], device: torch.device) -> None:
    """Queue the launches, in order, on the current stream of `device`."""
    drv = _driver()
    ctx, _, functions = _device_functions(device)
    current = drv.cuCtxGetCurrent()
    if int(current[0]) != 0 or int(current[1]) != int(ctx):
        _ok(drv.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")  # inference threads may not have it bound yet
    stream = drv.CUstream(torch.cuda.current_stream(device).cuda_stream)
    for launch in launches:
        if launch.grid == 0:
            continue
        params = np.array([ctypes.addressof(v) for v in launch.values], dtype=np.uint64)
        _ok((drv.cuLaunchKernel(functions[launch.name], launch.grid, 1, 1, launch.block, 1, 1, 0, stream,
                                params.ctypes.data, 0)[0], None), "cuLaunchKernel")
