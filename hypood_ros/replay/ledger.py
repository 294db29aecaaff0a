"""Which replayed frame each output answers, by message order and receipt rather than by stamp uniqueness.

Recorded bags can repeat header stamps or leave them at zero (drivers without a clock, re-stamped logs).
Every sent frame gets an index; an output on a topic is credited to the oldest frame that (a) carries
the output's stamp, (b) was sent before the output arrived, and (c) comes after the last frame credited
on that topic (the node answers in order and only ever skips frames). Counts are therefore exact; when
stamps repeat and the node skipped a frame, the credit may go to an older frame with the same stamp,
which makes that latency an upper bound, never negative. ROS-free.
"""
from __future__ import annotations

from collections import defaultdict, deque
from typing import Deque, Dict, Hashable, Iterable, List, Optional


class ReplayLedger:
    """Not thread-safe: the replayer calls it under its own lock."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = tuple(topics)
        self.sent_at: List[float] = []
        self.first_answer: Dict[int, float] = {}
        self.last_answer: Dict[int, float] = {}  # when the latest output of the frame came, on any topic
        self._answered = {topic: 0 for topic in self.topics}
        self._last = {topic: -1 for topic in self.topics}  # index of the last frame credited per topic
        self._waiting: Dict[str, Dict[Hashable, Deque[int]]] = {t: defaultdict(deque) for t in self.topics}
        self.unmatched = 0  # outputs that answer no frame of this replay (another publisher, an old frame)

    def sent(self, stamp: Hashable, now: float) -> int:
        """Record a frame about to be published; returns its index."""
        index = len(self.sent_at)
        self.sent_at.append(now)
        for waiting in self._waiting.values():
            waiting[stamp].append(index)
        return index

    def received(self, topic: str, stamp: Hashable, now: float) -> Optional[int]:
        """Credit an output on `topic`; returns the index of the frame it answers, or None."""
        queue = self._waiting[topic].get(stamp)
        while queue and queue[0] <= self._last[topic]:
            queue.popleft()  # skipped by the node: it answered a later frame on this topic already
        if not queue:
            self.unmatched += 1
            return None
        index = queue.popleft()
        self._last[topic] = index
        self._answered[topic] += 1
        self.first_answer.setdefault(index, now)
        self.last_answer[index] = now  # outputs are credited in the order they arrive
        return index

    def answered(self, topic: str) -> int:
        return self._answered[topic]

    def last_answered(self, topic: str) -> int:
        """Index of the newest frame answered on `topic` (-1: none yet)."""
        return self._last[topic]

    def latencies(self) -> List[float]:
        """Seconds from sending each answered frame to its first output on any topic (all >= 0)."""
        return [self.first_answer[i] - self.sent_at[i] for i in sorted(self.first_answer)]

    def spreads(self) -> List[float]:
        """Seconds from each answered frame's first output to its last (the outputs of one frame are published
        together: a spread is delivery, e.g. a reliable sample that needed a retransmission)."""
        return [self.last_answer[i] - self.first_answer[i] for i in sorted(self.first_answer)]
