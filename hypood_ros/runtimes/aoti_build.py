"""Building an AOTInductor package (`.pt2`) from a project checkpoint, checked against eager PyTorch.

`torch.export` captures the whole network (image -> seg_logits, embedding, uem_logits) at a fixed input
size, AOTInductor compiles it to native code for this machine's device (C++ on CPU, CUDA kernels on a GPU),
and the package gets the same kind of sidecar as a TensorRT engine. The package is written under a
temporary name and renamed only once it matches eager PyTorch, so a failed or interrupted build leaves
nothing under the final name.
"""
from __future__ import annotations

import datetime
import os
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Callable, List, Optional

import torch

from hypood_ros.classes import default_classes
from hypood_ros.errors import BackendError
from hypood_ros.runtimes.base import OUTPUT_NAMES
from hypood_ros.runtimes.engine_metadata import EngineMetadata, file_sha256, head_entry, running_machine, write_sidecar

SUFFIX = ".pt2"
Log = Callable[[str], None]


def stderr_log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Heartbeat:
    """Logs 'still <doing>' every `every` seconds while a long step runs, so a launch never looks hung."""

    def __init__(self, log: Log, doing: str, every: float = 30.0) -> None:
        self._log, self._doing, self._every = log, doing, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(self._every):
            self._log(f"  still {self._doing} ({time.monotonic() - start:.0f} s)")

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def check_request(out: Path, height: int, width: int, device: torch.device, fp16: bool, batch: int,
                  max_batch: int) -> None:
    if out.suffix != SUFFIX:
        raise BackendError(f"an AOTInductor package must be named *{SUFFIX}, got {out.name}")
    if height <= 0 or width <= 0 or height % 14 or width % 14:
        raise BackendError(f"input size {height}x{width} must be positive multiples of 14")
    if device.type not in ("cpu", "cuda"):
        raise BackendError(f"AOTInductor packages are built for cpu or cuda, not {device}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendError("device 'cuda' requested but no CUDA device is available")
    if fp16 and device.type != "cuda":
        raise BackendError("fp16 packages are built for CUDA only (use fp32 on CPU)")
    if batch < 1 or (max_batch and max_batch < batch):
        raise BackendError(f"batch range {batch}..{max_batch} is empty")


def max_abs_error(package: Path, model: torch.nn.Module, examples: List[torch.Tensor], dtype: torch.dtype) -> float:
    """Largest absolute difference, over outputs and examples, between the fresh package and eager fp32 PyTorch."""
    compiled = torch._inductor.aoti_load_package(str(package))
    worst = 0.0
    with torch.inference_mode():
        for example in examples:
            got, want = compiled(example.to(dtype)), model(example)
            worst = max([worst] + [float((got[n].float() - want[n].float()).abs().max()) for n in OUTPUT_NAMES])
    return worst


def build_aoti(checkpoint: str | os.PathLike, out: str | os.PathLike, height: int, width: int,
               device: str = "cpu", fp16: bool = False, batch: int = 1, max_batch: int = 0,
               log: Optional[Log] = None) -> EngineMetadata:
    """Compile `checkpoint` into the package `out` (+ sidecar). max_batch > batch: dynamic batch in that range."""
    from hypood_ros.model import load_checkpoint

    log = log or stderr_log
    out, checkpoint, dev = Path(out), Path(checkpoint), torch.device(device)
    check_request(out, height, width, dev, fp16, batch, max_batch)
    started = time.monotonic()
    model = load_checkpoint(checkpoint).eval().to(dev)
    source_sha256 = file_sha256(checkpoint)
    dtype = torch.float16 if fp16 else torch.float32
    dynamic = bool(max_batch) and max_batch > batch
    torch.manual_seed(0)
    # Export traces the largest batch: a traced batch of 1 would be specialized and fail a batch range.
    examples = [torch.randn(b, 3, height, width, device=dev) for b in ((batch, max_batch) if dynamic else (batch,))]
    shape = "x".join(map(str, (f"{batch}..{max_batch}" if dynamic else batch, 3, height, width)))
    log(f"building {out} from {checkpoint}: input {shape}, {'fp16' if fp16 else 'fp32'} on {dev}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp{SUFFIX}")
    try:
        step = time.monotonic()
        compiled_model = model.half() if fp16 else model
        dims = ({0: torch.export.Dim("batch", min=batch, max=max_batch)},) if dynamic else None
        with torch.no_grad():
            program = torch.export.export(compiled_model, (examples[-1].to(dtype),), dynamic_shapes=dims,
                                          strict=False)
        log(f"  [1/3] exported the graph in {time.monotonic() - step:.1f} s")
        step = time.monotonic()
        with Heartbeat(log, "compiling"), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecation notes from torch internals
            torch._inductor.aoti_compile_and_package(program, package_path=str(tmp))
        log(f"  [2/3] compiled with AOTInductor in {time.monotonic() - step:.1f} s")
        step = time.monotonic()
        worst = max_abs_error(tmp, model.float(), examples, dtype)  # both ends of a batch range
        tolerance = 5e-2 if fp16 else 1e-4
        if not worst <= tolerance:
            raise BackendError(f"the compiled package disagrees with PyTorch: max-abs {worst:.2e} > {tolerance:.0e}")
        log(f"  [3/3] checked against eager PyTorch in {time.monotonic() - step:.1f} s (max-abs {worst:.1e})")
        engine_sha256 = file_sha256(tmp)
        os.replace(tmp, out)
    except BackendError:
        raise
    except Exception as exc:  # export and compiler failures come in many types; the user needs one line
        raise BackendError(f"AOTInductor build of {checkpoint} failed: {type(exc).__name__}: "
                           f"{first_line(exc)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    machine = running_machine(dev)
    classes = getattr(model, "classes", None) or default_classes(int(model.head_params().weight_norm.shape[0]))
    meta = EngineMetadata(
        kind="aoti", torch_version=machine["torch_version"], device_type=dev.type, machine=machine["machine"],
        gpu_name=machine.get("gpu_name", ""), compute_capability=machine.get("compute_capability", ""),
        cpu_isa=machine.get("cpu_isa", ""), input_shape=[batch, 3, height, width], precision="fp16" if fp16 else "fp32",
        input_dtype=str(dtype).replace("torch.", ""), batch_range=[batch, max_batch] if dynamic else [],
        source_file=str(checkpoint), source_sha256=source_sha256, engine_sha256=engine_sha256,
        build_date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        build_seconds=round(seconds, 1), head=head_entry(model.head_params()), classes=classes.to_json(),
    )
    write_sidecar(out, meta)
    log(f"  package of {out.stat().st_size / 1e6:.1f} MB built in {seconds:.1f} s")
    return meta
