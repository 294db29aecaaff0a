"""Counters and rolling windows behind /diagnostics (ROS-free; the node turns them into messages).

Latency is measured from receipt of a frame to the publication of its outputs, on this machine's monotonic
clock, so an old bag or a camera with a skewed clock cannot distort it. The header-stamp latency is kept
only where the node gives one (sim time or a live camera on the same clock).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Deque, Dict, Optional

import numpy as np

WINDOW = 200  # samples kept for percentiles and rates: bounded memory however long the node runs


class FrameStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.bad = 0
        self.errors = 0
        self.last_error = ""
        self._in_times: Deque[float] = deque(maxlen=WINDOW)
        self._out_times: Deque[float] = deque(maxlen=WINDOW)
        self._latency: Deque[float] = deque(maxlen=WINDOW)  # receipt -> publish, seconds
        self._stamp_latency: Deque[float] = deque(maxlen=WINDOW)  # header stamp -> publish, seconds

    def on_received(self, replaced_waiting: bool) -> None:
        with self._lock:
            self.received += 1
            self.dropped += int(replaced_waiting)
            self._in_times.append(time.monotonic())

    def on_dropped(self, count: int) -> None:
        """Frames that waited and were never taken (the node stopping with frames queued)."""
        with self._lock:
            self.dropped += count

    def on_bad(self, reason: str) -> None:
        with self._lock:
            self.bad += 1
            self.last_error = reason

    def on_error(self, reason: str) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = reason

    def on_published(self, latency: float, stamp_latency: Optional[float] = None) -> None:
        with self._lock:
            self.processed += 1
            self._out_times.append(time.monotonic())
            self._latency.append(latency)
            if stamp_latency is not None:
                self._stamp_latency.append(stamp_latency)

    @staticmethod
    def _rate(times: Deque[float]) -> float:
        if len(times) < 2:
            return 0.0
        span = times[-1] - times[0]
        return (len(times) - 1) / span if span > 0 else 0.0

    @staticmethod
    def _percentiles(values: Deque[float]) -> Dict[str, float]:
        if not values:
            return {"p50": float("nan"), "p95": float("nan"), "max": float("nan")}
        arr = np.asarray(values) * 1e3
        return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)), "max": float(arr.max())}

    def snapshot(self) -> Dict[str, object]:
        with self._lock:
            latency = self._percentiles(self._latency)
            out = {
                "frames_received": self.received, "frames_processed": self.processed,
                "frames_dropped": self.dropped, "bad_messages": self.bad, "inference_errors": self.errors,
                "last_error": self.last_error,
                "input_rate_hz": self._rate(self._in_times), "output_rate_hz": self._rate(self._out_times),
                "latency_p50_ms": latency["p50"], "latency_p95_ms": latency["p95"], "latency_max_ms": latency["max"],
            }
            if self._stamp_latency:
                stamp = self._percentiles(self._stamp_latency)
                out.update({"stamp_latency_p50_ms": stamp["p50"], "stamp_latency_p95_ms": stamp["p95"],
                            "stamp_latency_max_ms": stamp["max"]})
            return out
