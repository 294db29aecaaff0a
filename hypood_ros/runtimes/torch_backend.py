"""PyTorch backend: the reference runtime, on CPU or CUDA."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from hypood_ros.errors import BackendError
from hypood_ros.runtimes.base import Backend, HeadParams
from hypood_ros.runtimes.cuda_graph import replay


class TorchBackend(Backend):
    """Runs a `Segmentor` module. fp16 is only offered on CUDA, where it pays off.

    bf16: the forward under CPU autocast (matmuls and convolutions in bfloat16, weights kept in fp32), on
    CPUs with bf16 instructions only (`precision.check_bf16`); outputs come back as float32 for the scores.

    cuda_graphs: capture the whole forward once and replay it per frame (CUDA only; removes the Python
    and launch overhead of hundreds of small kernels). The returned tensors are then reused by the next
    call, as with the TensorRT backend: consume them before running again.
    """

    name = "torch"
    dynamic_batch = True

    def __init__(
        self,
        model: torch.nn.Module,
        input_hw: Tuple[int, int],
        device: str | torch.device = "cpu",
        fp16: bool = False,
        batch_size: int = 1,
        cuda_graphs: bool = False,
        bf16: bool = False,
    ) -> None:
        self._device = torch.device(device)
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError("device 'cuda' requested but no CUDA device is available")
        if fp16 and self._device.type != "cuda":
            raise BackendError("fp16 is only supported on CUDA devices")
        if bf16:
            if fp16:
                raise BackendError("fp16 and bf16 exclude each other: choose one")
            if self._device.type != "cpu":
                raise BackendError("bf16 is a CPU option (autocast on the CPU); on CUDA use fp16")
            from hypood_ros.runtimes.precision import check_bf16

            check_bf16()
        self._bf16 = bf16
        self.precision = "fp16" if fp16 else "bf16" if bf16 else "fp32"
        height, width = (int(v) for v in input_hw)
        if height <= 0 or width <= 0 or height % 14 or width % 14:
            raise BackendError(f"input size {height}x{width} must be positive multiples of 14")
        self._dtype = torch.float16 if fp16 else torch.float32
        self._model = model.eval().to(self._device, self._dtype)
        self._shape = (int(batch_size), 3, height, width)
        self._head: Optional[HeadParams] = model.head_params().to(self._device)
        self._classes = getattr(model, "classes", None)  # set by load_checkpoint
        self._graph = None
        if cuda_graphs:
            if self._device.type != "cuda":
                raise BackendError("cuda_graphs needs a CUDA device")
            self._capture()

    def _capture(self) -> None:
        from hypood_ros.runtimes.cuda_graph import capture

        self._static_input = torch.zeros(self._shape, device=self._device, dtype=self._dtype)
        self._graph, self._static_output = capture(self._model, self._static_input)

    @property
    def batch_range(self):
        """A captured CUDA graph replays its own batch size only."""
        return (self._shape[0],) * 2 if self._graph is not None else (1, None)

    @torch.inference_mode()
    def run(self, batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        self.check_input(batch)
        # Outputs keep the model's dtype: the fused score op reads fp16 in place.
        if self._graph is not None:
            return replay(self._graph, self._static_input, self._static_output, batch)
        if self._bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                outputs = self._model(batch.to(self._device, self._dtype))
            return {name: value.float() for name, value in outputs.items()}
        return dict(self._model(batch.to(self._device, self._dtype)))

    def close(self) -> None:
        self._model = None
        self._graph = None
