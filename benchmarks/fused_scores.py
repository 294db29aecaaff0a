"""Fused score kernel: correctness against float64, then speed against eager PyTorch and torch.compile.

One call on a GPU machine checks and times everything and prints one table:

    python benchmarks/fused_scores.py [--iters 200]

Correctness: fresh random inputs for B in {1,4}, h x w in {37x74, 148x296, 256x512}, D=256, K=19, fp16 and
fp32; the outputs are poisoned before each run and checked fully written; relative error
max|kernel - ref| / max(1, |ref|) against a float64 computation from the same (rounded) inputs.
Speed: CUDA events, median over --iters runs after warm-up; achieved GB/s (bytes read + written once)
against a measured device-to-device copy. Exits 1 if any check fails. Without a GPU it says so and exits 0.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch
import torch.nn.functional as F

from hypood_ros.kernels import FusedScores, fused_scores
from hypood_ros.runtimes.base import HeadParams

D, K, ETA, LAM, THRESHOLD = 256, 19, 1.5, 1.0, 0.0
SHAPES = [(1, 37, 74), (4, 37, 74), (1, 148, 296), (4, 148, 296), (1, 256, 512), (4, 256, 512)]
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3}


def make_inputs(b, h, w, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    emb = torch.randn(b, D, h, w, device="cuda", generator=g)
    M = torch.randn(K, D, device="cuda", generator=g) / D ** 0.5
    bias = torch.randn(K, device="cuda", generator=g)
    logits = torch.einsum("kd,bdhw->bkhw", M, emb) + bias.view(1, -1, 1, 1)
    uem = torch.randn(b, 2, (h + 3) // 4, (w + 3) // 4, device="cuda", generator=g)
    return emb.to(dtype), logits.to(dtype), HeadParams(M.norm(dim=1), bias), uem.to(dtype)


def reference64(emb, logits, head, uem):
    f = logits.double() - head.bias.double().view(1, -1, 1, 1)
    zn = emb.double().norm(dim=1).clamp_min(1e-6)
    wfac = head.weight_norm.double().pow(ETA - 1).view(1, -1, 1, 1)
    lse = torch.logsumexp(wfac * f / zn.unsqueeze(1), dim=1)
    u = F.interpolate(uem.double(), size=logits.shape[2:], mode="bilinear", align_corners=False)
    llr = u[:, 1] - u[:, 0] - LAM * lse
    return logits.double().argmax(1), -lse, llr


def eager(emb, logits, wfac, bias, uem):
    """The same expression in unfused PyTorch (what the kernel replaces)."""
    f = logits.float() - bias.view(1, -1, 1, 1)
    zn = emb.float().norm(dim=1).clamp_min(1e-6)
    lse = torch.logsumexp(wfac.view(1, -1, 1, 1) * f / zn.unsqueeze(1), dim=1)
    u = F.interpolate(uem.float(), size=logits.shape[2:], mode="bilinear", align_corners=False)
    llr = u[:, 1] - u[:, 0] - LAM * lse
    return logits.argmax(1).to(torch.uint8), -lse, llr, (llr > THRESHOLD).to(torch.uint8) * 255


def poisoned(b, h, w):
    return FusedScores(
        class_ids=torch.full((b, h, w), 254, dtype=torch.uint8, device="cuda"),
        energy=torch.full((b, h, w), float("nan"), device="cuda"),
        llr=torch.full((b, h, w), float("nan"), device="cuda"),
        mask=torch.full((b, h, w), 77, dtype=torch.uint8, device="cuda"),
    )


def check(b, h, w, dtype, seed):
    emb, logits, head, uem = make_inputs(b, h, w, dtype, seed)
    out = poisoned(b, h, w)
    fused_scores(emb, logits, head, ETA, uem, LAM, THRESHOLD, out=out)
    torch.cuda.synchronize()
    written = bool((out.class_ids != 254).all() and torch.isfinite(out.energy).all()
                   and torch.isfinite(out.llr).all() and ((out.mask == 0) | (out.mask == 255)).all())
    ids, energy, llr = reference64(emb, logits, head, uem)
    rel = max(((out.energy.double() - energy).abs() / energy.abs().clamp_min(1)).max().item(),
              ((out.llr.double() - llr).abs() / llr.abs().clamp_min(1)).max().item())
    ids_agree = (out.class_ids.long() == ids).double().mean().item()
    mask_ok = bool((out.mask == (out.llr > THRESHOLD).to(torch.uint8) * 255).all())
    ok = written and mask_ok and rel <= TOLERANCE[dtype] and ids_agree >= 0.9999
    return ok, rel, ids_agree, written and mask_ok


def time_ms(fn, iters):
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy_bandwidth(iters):
    src = torch.empty(256 * 2 ** 20, dtype=torch.float32, device="cuda")  # 1 GiB
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), iters)
    return 2 * src.numel() * 4 / (ms * 1e-3) / 1e9  # read + write


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: the fused kernel benchmark needs a GPU (CPU machines use the registry reference)")
        return 0

    props = torch.cuda.get_device_properties(0)
    copy_gbs = copy_bandwidth(args.iters)
    print(f"device: {props.name} (sm_{props.major}{props.minor}), torch {torch.__version__}, "
          f"device-to-device copy {copy_gbs:.0f} GB/s")
    compiled = None if args.no_compile else torch.compile(eager)
    failures = 0
    print("| B | h x w | dtype | rel err | ids agree | kernel ms | eager ms | compile ms | kernel GB/s | % copy "
          "| x eager | x compile |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for seed, (b, h, w) in enumerate(SHAPES):
        for dtype in (torch.float32, torch.float16):
            ok, rel, agree, _ = check(b, h, w, dtype, seed)
            failures += not ok
            emb, logits, head, uem = make_inputs(b, h, w, dtype, seed + 100)
            out = poisoned(b, h, w)
            wfac = head.weight_norm.pow(ETA - 1)
            k_ms = time_ms(lambda: fused_scores(emb, logits, head, ETA, uem, LAM, THRESHOLD, out=out), args.iters)
            e_ms = time_ms(lambda: eager(emb, logits, wfac, head.bias, uem), args.iters)
            c_ms = time_ms(lambda: compiled(emb, logits, wfac, head.bias, uem), args.iters) if compiled else float("nan")
            size = torch.finfo(dtype).bits // 8
            moved = b * h * w * ((D + K) * size + 1 + 4 + 4 + 1) + uem.numel() * size
            gbs = moved / (k_ms * 1e-3) / 1e9
            print(f"| {b} | {h}x{w} | {str(dtype)[6:]} | {rel:.1e}{'' if ok else ' FAIL'} | {agree:.5f} | "
                  f"{k_ms:.4f} | {e_ms:.4f} | {c_ms:.4f} | {gbs:.0f} | {100 * gbs / copy_gbs:.0f}% | "
                  f"{e_ms / k_ms:.1f} | {c_ms / k_ms:.1f} |")
    if failures:
        print(f"{failures} correctness check(s) FAILED")
        return 1
    print("all correctness checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
