"""Shared libraries compiled from the package's C++ sources with the host compiler, cached on disk.

The fused kernel's CPU build (kernels/cpu_build.py) and the class-maximum scores' two loops
(scores/class_max_native.py) are built this way on first use: no binary is shipped. A library is cached
under the kernel cache (`HYPOOD_KERNEL_CACHE`, default ~/.cache/hypood_ros/kernels) by a digest of its
sources, the compiler's version and the flags, and written under a temporary name first, so that a build
cut off halfway leaves nothing that loads.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional, Sequence

#: No contraction into FMA and no fast math: a build rounds every operation as its source says.
FLAGS = ("-std=c++17", "-O2", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared", "-x", "c++")


def cache_dir() -> Path:
    """Where compiled kernels and libraries are kept: $HYPOOD_KERNEL_CACHE, else ~/.cache/hypood_ros/kernels."""
    root = os.environ.get("HYPOOD_KERNEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hypood_ros", "kernels"
    )
    return Path(root)


def compiler() -> Optional[str]:
    """The host C++ compiler: $CXX, else g++, else c++; None if there is none."""
    for candidate in (os.environ.get("CXX"), "g++", "c++"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def build_library(stem: str, main: Path, sources: Sequence[Path], directory: Path,
                  include: Optional[Path] = None) -> Path:
    """Compile `main` (which includes the rest of `sources`) into `directory`/`stem`-DIGEST.so; the path.

    Raises RuntimeError with the compiler's message when it fails, FileNotFoundError without a compiler."""
    cxx = compiler()
    if cxx is None:
        raise FileNotFoundError("no host C++ compiler found (set CXX)")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    digest = hashlib.sha256()
    for part in [*(Path(p).read_bytes() for p in sources), "\n".join(version).encode(), " ".join(FLAGS).encode()]:
        digest.update(part)
    target = Path(directory) / f"{stem}-{digest.hexdigest()[:16]}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp.so")
    cmd = [cxx, *FLAGS, *([f"-I{include}"] if include else []), str(main), "-o", str(tmp)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(done.stderr.strip() or f"{cxx} exited with {done.returncode}")
    os.replace(tmp, target)
    return target
