"""One entry point for the fused scores: the CUDA kernel for CUDA tensors, the registry elsewhere.

Both paths produce the same outputs (tested): class ids, the class-weighted normalized energy, the
hyperspherical LLR when UEM logits are given. Outputs are at the logit resolution [B,h,w], or at an
output size [B,H,W] with the registry's `image` score resolution. No mask: the node thresholds its chosen
score once, on the host (`pipeline.obstacle_mask`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import torch

from hypood_ros.errors import ConfigError
from hypood_ros.head import HeadParams
from hypood_ros.kernels import launch
from hypood_ros.kernels.launch import KernelLaunch
from hypood_ros.scores import ScoreInputs, compute_score
from hypood_ros.scores.registry import score_maps


@dataclass
class FusedScores:
    class_ids: torch.Tensor  # uint8 [B,h,w] (or [B,H,W] at an output size)
    energy: torch.Tensor  # float32, -logsumexp_k(w_k^(eta-1) f_k/||z||)
    llr: Optional[torch.Tensor] = None  # float32, hyperspherical LLR

    @property
    def score(self) -> torch.Tensor:
        """The most specific score computed: the LLR when there is one, else the energy."""
        return self.llr if self.llr is not None else self.energy


def _check_out(out: FusedScores, shape, device, need_llr: bool) -> None:
    wanted = [("class_ids", torch.uint8, True), ("energy", torch.float32, True), ("llr", torch.float32, need_llr)]
    for name, dtype, needed in wanted:
        t = getattr(out, name)
        if t is None:
            if needed:
                raise ConfigError(f"out.{name} is required")
            continue
        if tuple(t.shape) != tuple(shape) or t.dtype != dtype or t.device != device or not t.is_contiguous():
            raise ConfigError(f"out.{name} must be a contiguous {dtype} tensor of shape {tuple(shape)} on {device}")


def _check_size(out_size: Optional[Sequence[int]]) -> Optional[Tuple[int, int]]:
    if out_size is None:
        return None
    size = tuple(int(v) for v in out_size)
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"out_size must be (H, W) with H, W >= 1, got {tuple(out_size)}")
    return size  # type: ignore[return-value]


@dataclass(frozen=True)
class FusedArgs:
    """The fused op's arguments, once: the entry point, the registry's reference, the CUDA kernel and its CPU
    build all take this one object.

    embedding [B,D,h,w], logits (with bias) [B,K,h,w], uem_logits [B,2,h',w'] (fp16 or fp32); `out_size`
    (keyword only) None: outputs on the network grid [B,h,w] (`score_resolution = network` before
    upsampling), (H, W): outputs [B,H,W] at `score_resolution = image` (logits, UEM logits and ||z|| sampled
    bilinearly per output pixel, then the formulas).
    """
    embedding: torch.Tensor
    logits: torch.Tensor
    head: HeadParams
    eta: float = 1.5
    uem_logits: Optional[torch.Tensor] = None
    lam: float = 1.0
    out_size: Optional[Sequence[int]] = field(default=None, kw_only=True)

    def size(self) -> Optional[Tuple[int, int]]:
        return _check_size(self.out_size)

    def inputs(self) -> ScoreInputs:
        """The registry's view of the same tensors (which also checks their shapes)."""
        return ScoreInputs(logits=self.logits, embedding=self.embedding, head=self.head, uem_logits=self.uem_logits)


def reference_fused_scores(a: FusedArgs) -> FusedScores:
    """The same outputs computed from the scores registry (the definition the kernel is tested against).

    At an output size: the registry's `image` resolution (`score_maps`, one interpolation for both scores),
    class ids from the interpolated logits.
    """
    size = a.size()
    inputs = a.inputs()
    if size is None:
        energy = compute_score("weighted_normalized_energy", inputs, eta=a.eta)
        llr = compute_score("hyperspherical_llr", inputs, eta=a.eta, lam=a.lam) if a.uem_logits is not None else None
        class_ids = a.logits.argmax(dim=1).to(torch.uint8)
    else:
        names = ["weighted_normalized_energy"] + (["hyperspherical_llr"] if a.uem_logits is not None else [])
        maps, class_ids = score_maps(names, inputs, size, "image", eta=a.eta, lam=a.lam)
        energy, llr = maps["weighted_normalized_energy"], maps.get("hyperspherical_llr")
    return FusedScores(class_ids, energy, llr)


def kernel_fused_scores(a: FusedArgs, execute: Callable[[List[KernelLaunch], torch.device], None],
                        out: Optional[FusedScores] = None) -> FusedScores:
    """Prepare inputs and outputs, pack the launches (`launch.pack_fused`) and hand them to `execute`.

    `execute` is `launch.launch_plan` for CUDA tensors and `cpu_build.run_plan` for the CPU build of the
    same source: everything up to the kernel itself is this one code path.
    """
    size = a.size()
    a.inputs()  # validates shapes once, the same way the reference does
    dtype = torch.float16 if (a.logits.dtype == a.embedding.dtype == torch.float16 and
                              (a.uem_logits is None or a.uem_logits.dtype == torch.float16)) else torch.float32
    logits = a.logits.to(dtype).contiguous()
    device = logits.device
    prepared = launch.KernelInputs(
        embedding=a.embedding.to(dtype).contiguous(), logits=logits,
        wfac=a.head.weight_norm.to(device, torch.float32).pow(a.eta - 1.0).contiguous(),
        bias=a.head.bias.to(device, torch.float32).contiguous(),
        uem=None if a.uem_logits is None else a.uem_logits.to(dtype).contiguous(), lam=float(a.lam),
        out_size=size)
    b, _, h, w = logits.shape
    shape = (b, *(size or (h, w)))
    if out is None:
        class_ids = torch.empty(shape, dtype=torch.uint8, device=device)
        energy = torch.empty(shape, dtype=torch.float32, device=device)
        llr = torch.empty_like(energy) if prepared.uem is not None else None
    else:
        class_ids, energy, llr = out.class_ids, out.energy, out.llr
        _check_out(out, shape, device, prepared.uem is not None)
    execute(launch.pack_fused(prepared, (class_ids, energy, llr)), device)
    return FusedScores(class_ids, energy, llr)


def fused_scores(a: FusedArgs, out: Optional[FusedScores] = None) -> FusedScores:
    """The fused scores of `a`: the CUDA kernel for CUDA tensors, the registry's reference elsewhere.

    `out` (CUDA only): preallocated outputs to write into, e.g. to reuse buffers across frames; it must
    have `llr` when UEM logits are given.
    """
    if a.logits.shape[1] > 255:
        raise ConfigError(f"class ids are uint8: at most 255 classes, got {a.logits.shape[1]}")
    if not a.logits.is_cuda:
        return reference_fused_scores(a)
    return kernel_fused_scores(a, execute=launch.launch_plan, out=out)
