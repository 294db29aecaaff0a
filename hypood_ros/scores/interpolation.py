"""Bilinear interpolation (align_corners=False) of a band of output rows, reading only the source rows it needs.

`score_resolution = image` interpolates the network outputs to camera size before scoring. At 1080p with
19 classes that is tens of millions of values per frame, so the CPU path works in bands of output rows:
each band interpolates only the source rows its bilinear weights touch. Bands and the whole image use this
same function and give bit-identical interpolated values.

Indices and weights follow `F.interpolate(mode="bilinear", align_corners=False)`: the ratio in/out is
rounded to float32, the source position scale * (dst + 0.5) - 0.5 is computed exactly and rounded once to
float32 (as a fused multiply-add does), clamped at 0; lambda = position - floor(position). Columns are
interpolated first, then rows: out = top * (1 - lambda_y) + bottom * lambda_y with
top = left * (1 - lambda_x) + right * lambda_x. The values agree with `F.interpolate` to float32 rounding
(tested); an axis whose size does not change is copied, as `F.interpolate` does.
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

Axis = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@functools.lru_cache(maxsize=512)
def axis_weights(in_size: int, out_size: int, start: int, stop: int) -> Optional[Axis]:
    """(index0, index1, weight0, weight1) for output positions [start, stop); None when the size is unchanged.

    Cached (every band of every frame at one camera size asks for the same ones): treat them as read-only.
    Made outside inference mode, so that autograd (the LLR loss) may use them after inference did.
    """
    if in_size == out_size:
        return None
    with torch.inference_mode(False):
        return _axis_weights(in_size, out_size, start, stop)


def _axis_weights(in_size: int, out_size: int, start: int, stop: int) -> Axis:
    scale = float(np.float32(in_size) / np.float32(out_size))
    dst = torch.arange(start, stop, dtype=torch.float64)
    # In float64 the product of a float32 ratio and dst + 0.5 is exact: one rounding, to float32, at the end.
    src = (scale * (dst + 0.5) - 0.5).to(torch.float32).clamp_min(0.0)
    index0 = src.floor().to(torch.int64).clamp_max(in_size - 1)
    weight1 = (src - index0.to(torch.float32)).clamp(0.0, 1.0)
    weight0 = 1.0 - weight1
    index1 = (index0 + 1).clamp_max(in_size - 1)
    return index0, index1, weight0, weight1


def source_rows(in_size: int, out_size: int, rows: Tuple[int, int]) -> Tuple[int, int]:
    """The source rows (first, stop) that output rows `rows` read."""
    axis = axis_weights(in_size, out_size, rows[0], rows[1])
    if axis is None:
        return int(rows[0]), int(rows[1])
    return int(axis[0].min()), int(axis[1].max()) + 1


def interpolate_rows(t: torch.Tensor, size: Sequence[int], rows: Optional[Tuple[int, int]] = None,
                     source_offset: int = 0, source_height: Optional[int] = None) -> torch.Tensor:
    """Output rows `rows` = (first, stop) (default: all) of `t` [B,C,h,w] interpolated to `size` (H, W), float32.

    Only the source rows those output rows read are converted and interpolated (slicing is free). `t` may
    hold just a band of the source: rows [source_offset, source_offset + t.shape[2]) of a source of height
    `source_height`; the band must contain `source_rows(...)`.
    """
    height, width = int(size[0]), int(size[1])
    r0, r1 = (0, height) if rows is None else (int(rows[0]), int(rows[1]))
    full = t.shape[2] if source_height is None else int(source_height)
    row_axis = axis_weights(full, height, r0, r1)
    lo, hi = (r0, r1) if row_axis is None else (int(row_axis[0].min()), int(row_axis[1].max()) + 1)
    if lo < source_offset or hi > source_offset + t.shape[2]:
        raise ValueError(f"source rows [{lo}, {hi}) are not in the band given ([{source_offset}, "
                         f"{source_offset + t.shape[2]}))")
    band = t[:, :, lo - source_offset:hi - source_offset].float()
    col_axis = axis_weights(t.shape[3], width, 0, width)
    if col_axis is not None:
        c0, c1, w0, w1 = (a.to(t.device) for a in col_axis)
        band = band.index_select(3, c0).mul_(w0).add_(band.index_select(3, c1).mul_(w1))
    if row_axis is None:
        return band
    i0, i1, w0, w1 = (a.to(t.device) for a in row_axis)
    b, c, n, w = band.shape
    flat = band.reshape(b * c, n, w)  # index_select on a 3-D tensor's middle dim is the fast path on the CPU
    top = flat.index_select(1, i0 - lo).view(b, c, -1, w)
    bottom = flat.index_select(1, i1 - lo).view(b, c, -1, w)
    # top * w0 + bottom * w1, in place: the same roundings without two more temporaries of the band's size.
    return top.mul_(w0.view(-1, 1)).add_(bottom.mul_(w1.view(-1, 1)))

