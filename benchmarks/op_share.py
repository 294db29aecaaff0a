"""Share of eager PyTorch CPU time spent in the library kernels an AOTInductor package also calls.

    python benchmarks/op_share.py [--preset vits14] [--height 518 --width 1036] [--package m.pt2]

An AOTInductor CPU package generates C++ only for the elementwise and normalization work; convolutions,
linear layers and attention stay calls into the same ATen kernels eager PyTorch runs (`--package` counts
those calls in a package's generated wrapper). The profiled share bounds what compilation can gain.
"""
from __future__ import annotations

import argparse
import collections
import re
import zipfile

import torch

from hypood_ros.model import build_segmentor

LIBRARY_OPS = ("aten::mkldnn_convolution", "aten::addmm", "aten::mm", "aten::bmm",
               "aten::_scaled_dot_product_flash_attention_for_cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vits14")
    parser.add_argument("--height", type=int, default=518)
    parser.add_argument("--width", type=int, default=1036)
    parser.add_argument("--package", default=None, help="a .pt2 whose library calls to count")
    args = parser.parse_args()
    if args.package:
        with zipfile.ZipFile(args.package) as archive:
            wrapper = next(n for n in archive.namelist() if n.endswith(".wrapper.cpp"))
            calls = collections.Counter(re.findall(r"aoti_torch_cpu_\w+", archive.read(wrapper).decode()))
        print(f"library calls in {args.package}: " + ", ".join(f"{k} x{v}" for k, v in calls.most_common()))
    torch.manual_seed(0)
    model = build_segmentor(args.preset).eval()
    x = torch.randn(1, 3, args.height, args.width)
    with torch.inference_mode():
        model(x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            model(x)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e3
    print(f"eager {args.preset} 1x3x{args.height}x{args.width}: {total:.0f} ms profiled self time")
    print("| op | ms | share |\n|---|---:|---:|")
    library = 0.0
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total):
        if e.key in LIBRARY_OPS:
            ms = e.self_cpu_time_total / 1e3
            library += ms
            print(f"| {e.key} | {ms:.0f} | {ms / total:.0%} |")
    print(f"| all of these | {library:.0f} | {library / total:.0%} |")


if __name__ == "__main__":
    main()
