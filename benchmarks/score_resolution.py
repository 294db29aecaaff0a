"""score_resolution image vs network: time (and CPU peak memory) of the scoring step at camera sizes.

    python benchmarks/score_resolution.py [--score uem_llr | --scores a,b,...] [--inputs random|demo] [--iters 3]
        [--threads N] [--no-memory]

Inputs are the network outputs of the default 518x1036 input: logits K=19 on 148x296, embedding D=256 on
148x296, UEM logits on 37x74 (random values; the cost does not depend on them). For 640x480, 1280x720 and
1920x1080 it times `score_map(score, inputs, size, resolution)`, which is the whole scoring step of the
frame pipeline: at `image` interpolation then formula (in row bands on the CPU), at `network` formula then
upsampling of score and class ids. CPU columns: median wall time and median process CPU time (all threads)
over --iters runs after one warm-up, and
the peak resident memory the call adds (a fresh process per case, Linux: peak RSS reset through
/proc/self/clear_refs before the call, VmHWM after it minus VmRSS before),
for the banded image path, the same path in one band, and network. GPU columns when CUDA is present: the
registry on CUDA (one band) and the fused op (`fused_scores`, `out_size` for image when it has that
parameter; network = fused op on the grid + bilinear/nearest upsampling), median of CUDA-event times.

`--inputs demo`: the shipped demo model's outputs (models/demo/model.pt run at the same 518x1036 input, so the
same grids, D=32) on one generated street scene with two anomalies, instead of random values. The scores that
read the classes only through their maximum (max_logit, uem_llr, ...) cost less where a segmentation has
regions (scores/class_max.py); random logits are all class borders, their worst case. The "undecided" column
is the share of output pixels interpolated in all K classes for those scores.
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

import torch
import torch.nn.functional as F

SIZES = [(480, 640), (720, 1280), (1080, 1920)]
K, D, GRID, UEM_GRID = 19, 256, (148, 296), (37, 74)


def make_inputs(device="cpu", kind="random"):
    from hypood_ros.runtimes.base import HeadParams
    from hypood_ros.scores import ScoreInputs

    if kind == "demo":
        from pathlib import Path

        from hypood_ros.preprocess import preprocess
        from hypood_ros.runtimes import load_backend
        from hypood_ros.synthetic.writers import scene

        backend = load_backend(Path(__file__).resolve().parents[1] / "models/demo/model.pt", input_hw=(518, 1036))
        rgb = scene(900000, size=(540, 1080), family="evaluation", anomalies=2).rgb
        with torch.no_grad():
            out = backend.run(preprocess([rgb], (518, 1036), "cpu"))
        return ScoreInputs(out["seg_logits"].to(device), out["embedding"].to(device), backend.head.to(device),
                           out["uem_logits"].to(device))

    g = torch.Generator().manual_seed(0)
    emb = torch.randn(1, D, *GRID, generator=g)
    weight, bias = torch.randn(K, D, generator=g) / D ** 0.5, torch.randn(K, generator=g)
    logits = torch.einsum("kd,bdhw->bkhw", weight, emb) + bias.view(1, -1, 1, 1)
    uem = torch.randn(1, 2, *UEM_GRID, generator=g)
    head = HeadParams(weight.norm(dim=1), bias).to(device)
    return ScoreInputs(logits.to(device), emb.to(device), head, uem.to(device))


def cpu_time(fn, iters):
    """(median wall ms, median process CPU ms): the second is less sensitive to other load on shared cores."""
    fn()
    wall, cpu = [], []
    for _ in range(iters):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return 1000 * statistics.median(wall), 1000 * statistics.median(cpu)


def gpu_time(fn, iters):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _peak_child(score, size, resolution, one_band, queue, kind):
    from hypood_ros.scores import registry

    inputs = make_inputs(kind=kind)
    if one_band:
        registry.BAND_PIXELS = 1 << 40
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak resident set size (VmHWM) to the current one (Linux >= 4.0)
    before = _status_kib("VmRSS")
    registry.score_map(score, inputs, size, resolution)
    queue.put((_status_kib("VmHWM") - before) / 1024.0)


def peak_mib(score, size, resolution, one_band=False, kind="random"):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_child, args=(score, size, resolution, one_band, queue, kind))
    proc.start()
    value = queue.get()
    proc.join()
    return value


def fused_columns(score, size, iters, kind="random"):
    """(image ms, network ms) of the fused op on CUDA."""
    from hypood_ros.kernels import FusedArgs, fused_scores

    x = make_inputs("cuda", kind)
    uem = x.uem_logits if score == "hyperspherical_llr" else None

    def network():
        out = fused_scores(FusedArgs(x.embedding, x.logits, x.head, uem_logits=uem))
        s = F.interpolate(out.score[:, None], size=size, mode="bilinear", align_corners=False)
        ids = F.interpolate(out.class_ids[:, None].float(), size=size, mode="nearest").to(torch.uint8)
        return s, ids

    image_args = FusedArgs(x.embedding, x.logits, x.head, uem_logits=uem, out_size=size)
    return gpu_time(lambda: fused_scores(image_args), iters), gpu_time(network, iters)


def undecided(score, inputs, size):
    """Share of output pixels the class-maximum path interpolates in all K classes ('' for other scores)."""
    from hypood_ros.scores import score_spec
    from hypood_ros.scores.class_max import ClassMaxPlan

    reads = score_spec(score).reads_classes
    if reads in ("all", "none"):
        return ""
    return f"{100 * ClassMaxPlan(inputs, size, reads == 'max_class_score').undecided_share:.1f}%"


def main() -> int:
    from hypood_ros.scores import score_map

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--score", default="uem_llr")
    parser.add_argument("--scores", default=None, help="comma-separated scores, one row per score and size")
    parser.add_argument("--inputs", choices=("random", "demo"), default="random")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--gpu-iters", type=int, default=50)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory columns")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: torch's); 1 gives steadier CPU times on shared cores")
    args = parser.parse_args()
    from hypood_ros.memory import keep_freed_memory

    keep_freed_memory()  # as the node does; HYPOOD_KEEP_FREED_MEMORY=0 measures glibc's defaults
    if args.threads:
        torch.set_num_threads(args.threads)
    scores = args.scores.split(",") if args.scores else [args.score]
    cuda = torch.cuda.is_available()
    cpu_inputs = make_inputs(kind=args.inputs)
    k, d = cpu_inputs.logits.shape[1], cpu_inputs.embedding.shape[1]
    print(f"inputs {args.inputs}: K={k}, D={d}, logits {GRID[1]}x{GRID[0]}, UEM {UEM_GRID[1]}x{UEM_GRID[0]}; "
          f"CPU threads {torch.get_num_threads()}; CUDA: {torch.cuda.get_device_name(0) if cuda else 'none'}")
    head = ["score", "camera", "CPU image ms (wall / CPU time)", "CPU network ms (wall / CPU time)",
            "image/network (CPU time)", "undecided"]
    if not args.no_memory:
        head += ["CPU image peak MiB (bands)", "CPU image peak MiB (one band)", "CPU network peak MiB"]
    if cuda:
        head += ["GPU registry image ms", "GPU registry network ms", "GPU fused image ms", "GPU fused network ms"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for score in scores:
        fused = score in ("hyperspherical_llr", "weighted_normalized_energy")
        for size in SIZES:
            image = cpu_time(lambda: score_map(score, cpu_inputs, size, "image"), args.iters)
            network = cpu_time(lambda: score_map(score, cpu_inputs, size, "network"), args.iters)
            row = [score, f"{size[1]}x{size[0]}", f"{image[0]:.0f} / {image[1]:.0f}",
                   f"{network[0]:.0f} / {network[1]:.0f}", f"{image[1] / network[1]:.1f}x",
                   undecided(score, cpu_inputs, size)]
            if not args.no_memory:
                row += [f"{peak_mib(score, size, 'image', kind=args.inputs):.0f}",
                        f"{peak_mib(score, size, 'image', True, args.inputs):.0f}",
                        f"{peak_mib(score, size, 'network', kind=args.inputs):.0f}"]
            if cuda:
                gpu_inputs = make_inputs("cuda", args.inputs)
                row += [f"{gpu_time(lambda: score_map(score, gpu_inputs, size, 'image'), args.gpu_iters):.3f}",
                        f"{gpu_time(lambda: score_map(score, gpu_inputs, size, 'network'), args.gpu_iters):.3f}"]
                if fused:
                    fused_image, fused_network = fused_columns(score, size, args.gpu_iters, args.inputs)
                    row += ["n/a" if fused_image is None else f"{fused_image:.3f}", f"{fused_network:.3f}"]
                else:
                    row += ["-", "-"]
            print("| " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
