"""The class-maximum image order's two loops on the CPU, compiled (`class_max_native.cpp`).

The PyTorch path (`class_max.ClassMaxPlan`) does the undecided blocks as a few dozen operations per group
of blocks on small padded grids, and a band of the winners' maps as a handful of frame-sized operations;
on the CPU their fixed costs and memory passes were most of the image order's excess over the network
order (docs/PERFORMANCE.md). These loops give the same bits (the same candidate rule, products and sums,
no contraction) and are used for CPU float32 tensors without autograd when the host has a C++ compiler;
the library is built on first use into the kernel cache. Without a compiler, or with
`HYPOOD_NATIVE_SCORES=0`, or if the build fails (said once in the log), the PyTorch path runs.
"""
from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path
from typing import Optional, Tuple

import torch

from hypood_ros.native_build import build_library, cache_dir, compiler

SOURCE = Path(__file__).with_name("class_max_native.cpp")
_log = logging.getLogger(__name__)
_lock = threading.Lock()
_state: dict = {}

_P, _I64, _I32, _F = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_float
_ARGTYPES = [_P, _I64, _I64, _I64, _I64, _P,  # logits, B, K, h, w, bias
             _I64, _I64,  # H, W
             _P, _P, _P, _P, _I32,  # rows: first, count, w0, w1, interpolated
             _P, _P, _P, _P, _I32,  # columns
             _P, _P, _P, _I64,  # blocks: b, i, j, n
             _I32, _F, _F,  # class scores, margin, tiny
             _P, _P, _P, _P, _P, _P]  # handled, batch, at, value, class, class score
_BAND_ARGTYPES = [_P, _I64, _I64, _I64, _I64, _I64, _I64, _I64,  # winners, B, C, h, w, W, r0, r1
                  _P, _P, _P, _P, _I32,  # rows: i0, i1, w0, w1, interpolated
                  _P, _P, _P, _P, _I32,  # columns
                  _P, _I32, _P, _I32,  # class rows, their bytes, bias rows, class channel
                  _P, _P, _P]  # values, classes, class score


def enabled() -> bool:
    return os.environ.get("HYPOOD_NATIVE_SCORES", "1") != "0"


def library() -> Optional[ctypes.CDLL]:
    """The loaded library, built on first use; None where it cannot be (no compiler, a failed build)."""
    if not enabled():
        return None
    with _lock:
        if "lib" not in _state:
            _state["lib"] = None
            if compiler() is not None:
                try:
                    path = build_library("class_max_native", SOURCE, (SOURCE,), cache_dir() / "cpu")
                    lib = ctypes.CDLL(str(path))
                    lib.hypood_class_max_undecided.restype = ctypes.c_int64
                    lib.hypood_class_max_undecided.argtypes = _ARGTYPES
                    lib.hypood_class_max_band.restype = None
                    lib.hypood_class_max_band.argtypes = _BAND_ARGTYPES
                    _state["lib"] = lib
                except (OSError, RuntimeError) as exc:
                    _log.warning("the compiled loop for the class-maximum scores is not available (%s); "
                                 "PyTorch does their undecided pixels", str(exc).splitlines()[0] if str(exc) else exc)
        return _state["lib"]


def _ptr(t: Optional[torch.Tensor]) -> Optional[int]:
    return None if t is None else t.data_ptr()


def undecided_maxima(lib: ctypes.CDLL, logits: torch.Tensor, bias: torch.Tensor, size: Tuple[int, int], rows, cols,
                     span_y, span_x, blocks, class_scores: bool, margin: float, tiny: float):
    """(handled [n] bool, (batch, flat index in [B,H,W], max logit, its class, max class score or None)) for
    the undecided `blocks` (b, i, j); the blocks not handled (a value that is not finite) are for PyTorch."""
    b, k, h, w = logits.shape
    logits = logits.contiguous()
    bias = bias.contiguous()
    bb, i, j = (t.contiguous() for t in blocks)
    total = int((span_y[1].index_select(0, i) * span_x[1].index_select(0, j)).sum())
    handled = torch.empty(bb.numel(), dtype=torch.uint8)
    batch, at, cls = (torch.empty(total, dtype=torch.int64) for _ in range(3))
    value = torch.empty(total)
    class_score = torch.empty(total) if class_scores else None
    row_w = (None, None) if rows is None else (rows[2].contiguous(), rows[3].contiguous())
    col_w = (None, None) if cols is None else (cols[2].contiguous(), cols[3].contiguous())
    spans = [t.contiguous() for t in (*span_y, *span_x)]
    written = lib.hypood_class_max_undecided(
        logits.data_ptr(), b, k, h, w, bias.data_ptr(), size[0], size[1],
        spans[0].data_ptr(), spans[1].data_ptr(), _ptr(row_w[0]), _ptr(row_w[1]), int(rows is not None),
        spans[2].data_ptr(), spans[3].data_ptr(), _ptr(col_w[0]), _ptr(col_w[1]), int(cols is not None),
        bb.data_ptr(), i.data_ptr(), j.data_ptr(), bb.numel(),
        int(class_scores), margin, tiny,
        handled.data_ptr(), batch.data_ptr(), at.data_ptr(), value.data_ptr(), cls.data_ptr(), _ptr(class_score))
    found = (batch[:written], at[:written], value[:written], cls[:written],
             None if class_score is None else class_score[:written])
    return handled.bool(), found


def band(lib: ctypes.CDLL, winners: torch.Tensor, size: Tuple[int, int], rows_range: Tuple[int, int], rows, cols,
         class_rows: torch.Tensor, bias_rows: Optional[torch.Tensor], class_channel: Optional[int]):
    """(values [B,C,n,W], classes [B,n,W], class score [B,n,W] or None) of output rows `rows_range` of the
    winners' maps: what `ClassMaxPlan.band` makes before the undecided pixels are written in."""
    b, c, h, w = winners.shape
    r0, r1 = rows_range
    winners = winners.contiguous()
    class_rows = class_rows.contiguous()
    bias_rows = None if bias_rows is None else bias_rows.contiguous()
    values = torch.empty(b, c, r1 - r0, size[1])
    classes = torch.empty(b, r1 - r0, size[1], dtype=class_rows.dtype)
    class_score = torch.empty(b, r1 - r0, size[1]) if class_channel is not None else None
    row = [None] * 4 if rows is None else [a.contiguous() for a in rows]
    col = [None] * 4 if cols is None else [a.contiguous() for a in cols]
    lib.hypood_class_max_band(
        winners.data_ptr(), b, c, h, w, size[1], r0, r1,
        *map(_ptr, row), int(rows is not None), *map(_ptr, col), int(cols is not None),
        class_rows.data_ptr(), class_rows.element_size(), _ptr(bias_rows),
        -1 if class_channel is None else class_channel, values.data_ptr(), classes.data_ptr(), _ptr(class_score))
    return values, classes, class_score
