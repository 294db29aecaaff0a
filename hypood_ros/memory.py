"""Keep freed memory in the process for the next frame instead of handing it back to the kernel.

glibc's malloc serves large requests with fresh pages from mmap (above a threshold it raises up to 32 MiB)
and gives the top of its heap back to the kernel when enough of it is free. A frame pipeline allocates and
frees the same frame-sized tensors every frame, and the network its activations, so every frame faults its
pages in again: 345 000 to 446 000 page faults per ViT-S/14 frame at 518x1036 on the development machine, where a
fault costs a few microseconds. With `keep_freed_memory` every allocation comes from the heap and the heap is
not trimmed: after the first frame the same memory is reused. Measured (docs/PERFORMANCE.md, "Freed memory
kept between frames"): no page faults, 9-23% less time per network pass, and a peak resident size 5-19%
higher, which the process now keeps between frames.

Called by the entry points (the node, `hypood`, the fleet's workers and the benchmarks), never on import: it
changes the whole process. `HYPOOD_KEEP_FREED_MEMORY=0` in the environment leaves glibc's defaults (for
a process that must give memory back between frames). Elsewhere than glibc (musl, macOS, an allocator
preloaded in its place) it changes nothing that is used.
"""
from __future__ import annotations

import ctypes
import os
import sys

#: mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: The largest trim threshold mallopt takes (an int): the heap is given back only above 2 GiB free at its top.
NEVER_TRIM = 2 ** 31 - 1


#: Set to 0 to keep glibc's defaults.
ENV = "HYPOOD_KEEP_FREED_MEMORY"


def keep_freed_memory() -> bool:
    """No allocation from mmap, no trimming of the heap; True where glibc took both settings (False where
    ENV is 0 or the C library is not glibc)."""
    if os.environ.get(ENV, "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library to ask, or one without mallopt (musl)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
