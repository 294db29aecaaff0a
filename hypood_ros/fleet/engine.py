"""`hypood fleet` on Ray: a pool of model-holding actors, one bag at a time each, from one machine to a cluster.

Each worker is a Ray actor that loads the model(s) once (`work.BagWorker`) and streams a bag's frame records
back as a Ray streaming generator, so the driver shows progress per frame and writes each bag's results the
moment its last frame is in. Faults:
- a worker process that dies mid-bag is restarted by Ray and the bag's task retried (`max_restarts`,
  `max_task_retries`); Ray skips the items the driver already has, and the driver keeps frame records by
  frame index besides, so no frame is counted twice;
- a bag that cannot be read is reported by the worker and the others go on; a worker that dies again and
  again, or is killed by Ray's memory monitor (named: node, pid, out of memory), fails its bag only, and a
  fresh worker takes its place;
- Ctrl-C kills the workers and keeps every bag already written.
Ray is imported here only: `hypood fleet` is the one command that needs it.
"""
from __future__ import annotations

import os
import re
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from hypood_ros.errors import HypoodError
from hypood_ros.fleet.report import FleetOutput
from hypood_ros.fleet.work import BagJob, BagWorker, Options
from hypood_ros.memory import keep_freed_memory


@dataclass(frozen=True)
class EngineSettings:
    address: Optional[str] = None  # None: a local Ray in this process with the machine's cores
    workers: int = 0  # 0: as many as the cluster's CPUs (or GPUs) allow, at most one per bag
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    retries: int = 2  # restarts of a dead worker, and retries of its bag
    force: bool = False  # redo bags whose results are already there
    num_cpus: Optional[int] = None  # local Ray only: CPUs it may use (default: the machine's)


@dataclass
class FleetRun:
    summaries: List[dict] = field(default_factory=list)  # finished bags, this run's and earlier ones
    failures: List[Tuple[str, str]] = field(default_factory=list)
    skipped: int = 0  # bags already done with the same key
    processed_frames: int = 0
    seconds: float = 0.0  # from the workers being ready to the last bag
    setup_seconds: float = 0.0  # Ray start or connection, workers loading their models
    workers: int = 0
    nodes: int = 0
    interrupted: str = ""


class _Actor:
    """The Ray actor around a BagWorker; each yielded item says which process on which node made it."""

    def __init__(self, options: Options) -> None:
        import ray

        keep_freed_memory()  # this worker process runs the pipeline frame after frame (hypood_ros/memory.py)
        self.worker = BagWorker(options)
        context = ray.get_runtime_context()
        self.where = {"node": ray.util.get_node_ip_address(), "node_id": context.get_node_id(), "pid": os.getpid()}

    def ready(self) -> dict:
        return self.where

    def run(self, job: BagJob):
        for kind, item in self.worker.run(job):
            yield kind, item, self.where


@contextmanager
def ray_session(settings: EngineSettings, log: Callable[[str], None] = print):
    """Ray for this run: an existing connection is used as it is; else `address` is joined, else a local Ray
    started and stopped here. Workers of a Ray started or joined here run this process's own hypood_ros
    package (Ray ships it to every node, whatever is installed there); its dependencies (torch, rosbags, ...)
    must be installed on the nodes."""
    import logging

    import ray

    if ray.is_initialized():
        yield ray
        return
    import hypood_ros

    package = {"py_modules": [str(Path(hypood_ros.__file__).parent)], "excludes": ["__pycache__", "*.pyc"]}
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING, runtime_env=package)
    try:
        if settings.address:
            ray.init(address=settings.address, **quiet)
        else:
            ray.init(num_cpus=settings.num_cpus or os.cpu_count() or 1, include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {settings.address}" if settings.address else "a local Ray"
        raise HypoodError(f"cannot start or join {where}: {str(exc).strip().splitlines()[0]}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def worker_count(ray, settings: EngineSettings, bags: int) -> int:
    resources = ray.cluster_resources()
    if settings.workers:
        n = settings.workers
    elif settings.gpus_per_worker > 0:
        n = int(resources.get("GPU", 0) // settings.gpus_per_worker)
    else:
        n = int(resources.get("CPU", 1) // max(settings.cpus_per_worker, 1e-9))
    if settings.gpus_per_worker > 0 and resources.get("GPU", 0) < settings.gpus_per_worker:
        raise HypoodError(f"--gpus-per-worker {settings.gpus_per_worker:g}, but the Ray cluster has "
                          f"{resources.get('GPU', 0):g} GPU(s)")
    return max(1, min(n, bags))


_PID = re.compile(r"Worker PID: (\d+)")
_IP = re.compile(r"Worker IP address: ([\w.:-]+)")


def worker_error(exc: BaseException, job: BagJob, where: Optional[dict]) -> str:
    """One line for a bag whose worker failed: the worker named (node, pid), out of memory said so."""
    import ray

    text = str(exc)
    pid = (where or {}).get("pid") or (_PID.search(text).group(1) if _PID.search(text) else "?")
    node = (where or {}).get("node") or (_IP.search(text).group(1) if _IP.search(text) else "?")
    oom = isinstance(exc, ray.exceptions.OutOfMemoryError) or "out of memory" in text.lower() or \
        "OutOfMemory" in text
    if oom:
        return (f"{job.bag}: worker pid {pid} on node {node} ran out of memory and was killed (give each worker "
                "more memory: fewer workers per node, or a smaller input)")
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        return f"{job.bag}: worker pid {pid} on node {node} failed: {type(cause).__name__}: {first}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"{job.bag}: worker pid {pid} on node {node} died and its retries are spent: {first}"


def _actor_class(ray, settings: EngineSettings):
    return ray.remote(_Actor).options(num_cpus=settings.cpus_per_worker, num_gpus=settings.gpus_per_worker,
                                      max_restarts=settings.retries, max_task_retries=settings.retries,
                                      scheduling_strategy="SPREAD")


def _start_workers(ray, cls, options: Options, n: int) -> List[Tuple[object, dict]]:
    actors = [cls.remote(options) for _ in range(n)]
    try:
        where = ray.get([a.ready.remote() for a in actors])
    except ray.exceptions.RayError as exc:
        for a in actors:
            ray.kill(a)
        cause = getattr(exc, "cause", None) or exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise HypoodError(f"the workers could not load the model(s): {first}") from None
    return list(zip(actors, where))


def run_fleet(jobs: Sequence[BagJob], failures: Sequence[Tuple[str, str]], options: Options, out: FleetOutput,
              settings: EngineSettings = EngineSettings(), progress=None, log: Callable[[str], None] = print,
              observe: Optional[Callable[[BagJob, str, dict], None]] = None) -> FleetRun:
    """Every job not already done (or all with `force`) on Ray workers; each bag written as it finishes.

    `progress`: a tqdm-like bar (`total`, `update`) advanced per new frame. `observe(job, kind, where)` is
    called after each item a worker sends ("frame", "done", "error"; where: node, node_id, pid)."""
    run = FleetRun(failures=list(failures))
    todo = []
    for job in jobs:
        done = None if settings.force else out.finished(job)
        if done is None:
            todo.append(job)
        else:
            run.summaries.append(done)
            run.skipped += 1
    if not todo:
        return run
    if progress is not None:
        progress.total = sum(j.frames for j in todo)
        progress.refresh()
    started = time.perf_counter()
    with ray_session(settings, log) as ray:
        n = worker_count(ray, settings, len(todo))
        cls = _actor_class(ray, settings)
        idle = _start_workers(ray, cls, options, n)
        run.workers = n
        run.nodes = len({w["node_id"] for _, w in idle})
        run.setup_seconds = time.perf_counter() - started
        loop_start = time.perf_counter()
        queue = deque(todo)
        running: Dict[object, dict] = {}
        try:
            while queue or running:
                while idle and queue:
                    actor, where = idle.pop()
                    job = queue.popleft()
                    running[actor.run.remote(job)] = {"actor": actor, "where": where, "job": job, "records": {},
                                                      "seen": {}, "result": None, "error": None}
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for gen in ready:
                    state = running[gen]
                    job = state["job"]
                    try:
                        kind, item, where = ray.get(next(gen))
                    except StopIteration:
                        del running[gen]
                        _finish(run, out, state, log)
                        idle.append((state["actor"], state["where"]))
                        continue
                    except ray.exceptions.RayError as exc:
                        del running[gen]
                        message = worker_error(exc, job, state.get("last"))
                        run.failures.append((job.bag, message))
                        log(f"failed: {message}")
                        ray.kill(state["actor"])  # dead or not to be trusted: a fresh worker takes its place
                        if queue:
                            idle += _start_workers(ray, cls, options, 1)
                        continue
                    state["last"] = where
                    state["seen"][(where["node_id"], where["pid"])] = where
                    if kind == "frame":
                        if item["frame"] not in state["records"]:
                            state["records"][item["frame"]] = item
                            run.processed_frames += 1
                            if progress is not None:
                                progress.update(1)
                    elif kind == "done":
                        state["result"] = item
                    else:
                        state["error"] = item
                    if observe is not None:
                        observe(job, kind, where)
        except KeyboardInterrupt:
            for state in running.values():
                ray.kill(state["actor"])
            finished = {s["key"] for s in run.summaries} | {b for b, _ in run.failures}
            unfinished = sum(1 for j in todo if j.key not in finished and j.bag not in finished)
            run.interrupted = (f"stopped by the user; {unfinished} bag(s) not finished (a later run with the same "
                               "options does them and skips the finished ones)")
        finally:
            run.seconds = time.perf_counter() - loop_start
    return run


def _finish(run: FleetRun, out: FleetOutput, state: dict, log: Callable[[str], None]) -> None:
    job = state["job"]
    if state["error"] is not None:
        run.failures.append((job.bag, state["error"]))
        log(f"failed: {state['error']}")
        return
    result = state["result"]
    if result is None:
        run.failures.append((job.bag, f"{job.bag}: the worker ended without a result"))
        return
    if len(state["records"]) != result["frames"]:  # every frame exactly once, whatever was retried
        run.failures.append((job.bag, f"{job.bag}: {len(state['records'])} frame records for {result['frames']} "
                                      "frames processed"))
        return
    workers = []
    for (node_id, pid), where in state["seen"].items():
        workers.append({**where, "max_rss_mb": result["max_rss_mb"] if pid == result["pid"] else None})
    run.summaries.append(out.write_bag(job, list(state["records"].values()), result, workers))
