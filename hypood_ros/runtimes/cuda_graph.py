"""Whole-forward CUDA graph capture shared by the backends that offer `cuda_graphs`.

Replaying one captured graph per frame removes the Python and launch overhead of hundreds of small
kernels. The graph reads a static input tensor and writes static outputs that every replay overwrites.
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import torch

from hypood_ros.errors import BackendError


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


def replay(graph: torch.cuda.CUDAGraph, static_input: torch.Tensor, static_output: Dict[str, torch.Tensor],
           batch: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Copy `batch` into the captured input and replay; the outputs are overwritten by the next replay."""
    if batch.shape != static_input.shape:
        raise BackendError(f"a CUDA graph replays batch size {static_input.shape[0]} only, got {batch.shape[0]}")
    static_input.copy_(batch)
    graph.replay()
    return dict(static_output)
