"""Whole-forward CUDA graph capture shared by the backends that offer `cuda_graphs`.

Replaying one captured graph per frame removes the Python and launch overhead of hundreds of small
kernels. The graph reads a static input tensor and writes static outputs that every replay overwrites.
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import torch


@torch.inference_mode()
def capture(forward: Callable[[torch.Tensor], Dict[str, torch.Tensor]], static_input: torch.Tensor,
            warmup: int = 3) -> Tuple[torch.cuda.CUDAGraph, Dict[str, torch.Tensor]]:
    """Warm `forward` up on a side stream (allocator, library choices), then capture it on `static_input`."""
    device = static_input.device
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            forward(static_input)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_output = forward(static_input)
    return graph, static_output
