"""Fused score kernel: correctness against float64, then speed, at the network grid and at image resolution.

One call on a GPU machine checks and times everything and prints two tables:

    python benchmarks/fused_scores.py [--iters 200] [--no-compile]

Network grid (`out_size=None`): fresh random inputs for B in {1,4}, h x w in {37x74, 148x296, 256x512},
D=256, K=19, fp16 and fp32; timed against the same expression in eager PyTorch and `torch.compile`;
achieved GB/s (bytes read + written once) against a measured device-to-device copy.

Image resolution (`out_size=(H, W)`, `score_resolution = image`): a 148x296 network grid (a 518x1036
input) scored at 640x480, 1280x720 and 1920x1080, B=1; the image mode is timed against the `network`
order (kernel on the grid, then the LLR upsampled bilinearly and the class ids nearest, as the pipeline
does) and against the registry's eager `image` path (`score_map`, which materializes K+3 interpolated
channels).

Correctness everywhere: outputs are poisoned before each run and checked fully written; relative error
max|kernel - ref| / max(1, |ref|) against a float64 computation from the same (rounded) inputs; class
ids agreement with the float64 argmax. Exits 1 if any check fails. Without a GPU the correctness checks
run on the kernel's CPU build (`hypood_ros.kernels.cpu_build`, small shapes, no timings).
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch
import torch.nn.functional as F

from hypood_ros.head import HeadParams
from hypood_ros.kernels import FusedArgs, FusedScores, fused_scores
from hypood_ros.scores import ScoreInputs
from hypood_ros.scores.registry import score_map

D, K, ETA, LAM = 256, 19, 1.5, 1.0
SHAPES = [(1, 37, 74), (4, 37, 74), (1, 148, 296), (4, 148, 296), (1, 256, 512), (4, 256, 512)]
IMAGE_GRID = (148, 296)
IMAGE_SIZES = [(480, 640), (720, 1280), (1080, 1920)]
# Small cases for the CPU build: (B, h, w, out_size or None).
CPU_CASES = [(2, 13, 21, None), (2, 13, 21, (40, 67)), (1, 13, 21, (7, 9))]
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3}


def make_inputs(b, h, w, dtype, seed, device="cuda"):
    g = torch.Generator(device=device).manual_seed(seed)
    emb = torch.randn(b, D, h, w, device=device, generator=g)
    M = torch.randn(K, D, device=device, generator=g) / D ** 0.5
    bias = torch.randn(K, device=device, generator=g)
    logits = torch.einsum("kd,bdhw->bkhw", M, emb) + bias.view(1, -1, 1, 1)
    uem = torch.randn(b, 2, (h + 3) // 4, (w + 3) // 4, device=device, generator=g)
    return emb.to(dtype), logits.to(dtype), HeadParams(M.norm(dim=1), bias), uem.to(dtype)


def reference64(emb, logits, head, uem, out_size=None):
    """float64, from the definition: at `out_size`, logits, u and ||z|| interpolated first."""
    full = logits.double()
    zn = emb.double().norm(dim=1, keepdim=True)
    size = tuple(logits.shape[2:]) if out_size is None else tuple(out_size)
    if out_size is not None:
        full = F.interpolate(full, size=size, mode="bilinear", align_corners=False)
        zn = F.interpolate(zn, size=size, mode="bilinear", align_corners=False)
    f = full - head.bias.double().view(1, -1, 1, 1)
    wfac = head.weight_norm.double().pow(ETA - 1).view(1, -1, 1, 1)
    lse = torch.logsumexp(wfac * f / zn.clamp_min(1e-6), dim=1)
    u = F.interpolate(uem.double(), size=size, mode="bilinear", align_corners=False)
    llr = u[:, 1] - u[:, 0] - LAM * lse
    return full.argmax(1), -lse, llr


def eager(emb, logits, wfac, bias, uem):
    """The same expression in unfused PyTorch (what the kernel replaces) at the network grid."""
    f = logits.float() - bias.view(1, -1, 1, 1)
    zn = emb.float().norm(dim=1).clamp_min(1e-6)
    lse = torch.logsumexp(wfac.view(1, -1, 1, 1) * f / zn.unsqueeze(1), dim=1)
    u = F.interpolate(uem.float(), size=logits.shape[2:], mode="bilinear", align_corners=False)
    llr = u[:, 1] - u[:, 0] - LAM * lse
    return logits.argmax(1).to(torch.uint8), -lse, llr


def network_then_upsample(emb, logits, head, uem, out, size):
    """The `network` order: kernel on the grid, then the score bilinear and the class ids nearest."""
    fused_scores(FusedArgs(emb, logits, head, ETA, uem, LAM), out=out)
    llr = F.interpolate(out.llr[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    ids = F.interpolate(out.class_ids[:, None].float(), size=size, mode="nearest")[:, 0].to(torch.uint8)
    return ids, llr


def eager_image(emb, logits, head, uem, size):
    """The registry's `image` path (interpolates K+3 channels to the output size, then the formula)."""
    inputs = ScoreInputs(logits, emb, head, uem)
    return score_map("hyperspherical_llr", inputs, size, "image", eta=ETA, lam=LAM)


def poisoned(b, h, w, device="cuda"):
    return FusedScores(
        class_ids=torch.full((b, h, w), 254, dtype=torch.uint8, device=device),
        energy=torch.full((b, h, w), float("nan"), device=device),
        llr=torch.full((b, h, w), float("nan"), device=device),
    )


def check(b, h, w, dtype, seed, out_size=None, run=None, device="cuda"):
    """Run (default: `fused_scores` into poisoned outputs) and compare with float64."""
    emb, logits, head, uem = make_inputs(b, h, w, dtype, seed, device)
    oh, ow = out_size or (h, w)
    out = poisoned(b, oh, ow, device)
    (run or fused_scores)(FusedArgs(emb, logits, head, ETA, uem, LAM, out_size=out_size), out=out)
    if device == "cuda":
        torch.cuda.synchronize()
    written = bool((out.class_ids != 254).all() and torch.isfinite(out.energy).all()
                   and torch.isfinite(out.llr).all())
    ids, energy, llr = reference64(emb, logits, head, uem, out_size)
    rel = max(((out.energy.double() - energy).abs() / energy.abs().clamp_min(1)).max().item(),
              ((out.llr.double() - llr).abs() / llr.abs().clamp_min(1)).max().item())
    ids_agree = (out.class_ids.long() == ids).double().mean().item()
    ok = written and rel <= TOLERANCE[dtype] and ids_agree >= 0.9999
    return ok, rel, ids_agree


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


def cpu_checks() -> int:
    """Correctness of the kernel's CPU build against float64 (no timings: a CPU build is not a backend)."""
    from hypood_ros.kernels.cpu_build import cpu_kernel_fused_scores, load

    kernels = load()

    def run(args, out):
        return cpu_kernel_fused_scores(args, out=out, kernels=kernels)

    print("no CUDA device: timings need a GPU; correctness of the kernel's CPU build against float64:")
    print("| B | h x w | output | dtype | rel err | ids agree |")
    print("|---|---|---|---|---:|---:|")
    failures = 0
    for seed, (b, h, w, size) in enumerate(CPU_CASES):
        for dtype in (torch.float32, torch.float16):
            ok, rel, agree = check(b, h, w, dtype, seed, size, run=run, device="cpu")
            failures += not ok
            out = "grid" if size is None else f"{size[1]}x{size[0]}"
            print(f"| {b} | {h}x{w} | {out} | {str(dtype)[6:]} | {rel:.1e}{'' if ok else ' FAIL'} | {agree:.5f} |")
    return failures


def network_table(args, copy_gbs, compiled) -> int:
    failures = 0
    print("| B | h x w | dtype | rel err | ids agree | kernel ms | eager ms | compile ms | kernel GB/s | % copy "
          "| x eager | x compile |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for seed, (b, h, w) in enumerate(SHAPES):
        for dtype in (torch.float32, torch.float16):
            ok, rel, agree = check(b, h, w, dtype, seed)
            failures += not ok
            emb, logits, head, uem = make_inputs(b, h, w, dtype, seed + 100)
            out = poisoned(b, h, w)
            wfac = head.weight_norm.pow(ETA - 1)
            grid_args = FusedArgs(emb, logits, head, ETA, uem, LAM)
            k_ms = time_ms(lambda: fused_scores(grid_args, out=out), args.iters)
            e_ms = time_ms(lambda: eager(emb, logits, wfac, head.bias, uem), args.iters)
            c_ms = (time_ms(lambda: compiled(emb, logits, wfac, head.bias, uem), args.iters) if compiled
                    else float("nan"))
            size = torch.finfo(dtype).bits // 8
            moved = b * h * w * ((D + K) * size + 1 + 4 + 4) + uem.numel() * size
            gbs = moved / (k_ms * 1e-3) / 1e9
            print(f"| {b} | {h}x{w} | {str(dtype)[6:]} | {rel:.1e}{'' if ok else ' FAIL'} | {agree:.5f} | "
                  f"{k_ms:.4f} | {e_ms:.4f} | {c_ms:.4f} | {gbs:.0f} | {100 * gbs / copy_gbs:.0f}% | "
                  f"{e_ms / k_ms:.1f} | {c_ms / k_ms:.1f} |")
    return failures


def image_table(args, copy_gbs) -> int:
    failures = 0
    h, w = IMAGE_GRID
    print(f"\nimage resolution, network grid {h}x{w}, B=1 (`network` = kernel on the grid + upsampling):")
    print("| output | dtype | rel err | ids agree | image kernel ms | network ms | eager image ms | kernel GB/s "
          "| % copy | x eager image |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for seed, (oh, ow) in enumerate(IMAGE_SIZES):
        for dtype in (torch.float32, torch.float16):
            ok, rel, agree = check(1, h, w, dtype, seed, (oh, ow))
            failures += not ok
            emb, logits, head, uem = make_inputs(1, h, w, dtype, seed + 200)
            out_img, out_net = poisoned(1, oh, ow), poisoned(1, h, w)
            image_args = FusedArgs(emb, logits, head, ETA, uem, LAM, out_size=(oh, ow))
            i_ms = time_ms(lambda: fused_scores(image_args, out=out_img), args.iters)
            n_ms = time_ms(lambda: network_then_upsample(emb, logits, head, uem, out_net, (oh, ow)), args.iters)
            e_ms = time_ms(lambda: eager_image(emb, logits, head, uem, (oh, ow)), args.iters)
            size = torch.finfo(dtype).bits // 8
            # Every input read once, the norm map written and read once, the outputs written once.
            moved = (h * w * ((D + K) * size + 4 + 4) + uem.numel() * size + oh * ow * (1 + 4 + 4))
            gbs = moved / (i_ms * 1e-3) / 1e9
            print(f"| {ow}x{oh} | {str(dtype)[6:]} | {rel:.1e}{'' if ok else ' FAIL'} | {agree:.5f} | {i_ms:.4f} | "
                  f"{n_ms:.4f} | {e_ms:.4f} | {gbs:.0f} | {100 * gbs / copy_gbs:.0f}% | {e_ms / i_ms:.1f} |")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        failures = cpu_checks()
    else:
        props = torch.cuda.get_device_properties(0)
        copy_gbs = copy_bandwidth(args.iters)
        print(f"device: {props.name} (sm_{props.major}{props.minor}), torch {torch.__version__}, "
              f"device-to-device copy {copy_gbs:.0f} GB/s")
        compiled = None if args.no_compile else torch.compile(eager)
        failures = network_table(args, copy_gbs, compiled) + image_table(args, copy_gbs)
    if failures:
        print(f"{failures} correctness check(s) FAILED")
        return 1
    print("all correctness checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
