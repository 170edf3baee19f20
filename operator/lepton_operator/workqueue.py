"""A keyed work queue: what turns many change notifications into one pass per model.

The controller-runtime shape, in asyncio: watch events, the metrics sampler and the
pass itself (``requeue_after``) add a model's key; the queue hands each key to one
worker at a time. A key added while it waits keeps its earliest due time (changes
coalesce); a key added while a worker holds it is marked dirty and handed out again
once that pass is done, so no change is lost and two passes of one model never
overlap. A pass that raises is retried after an exponential per-key back-off
(``base * 2**failures``, capped); one that succeeds forgets its failures.

Three lanes, handed out in order: a due key of ``URGENT`` before any of ``AHEAD``, and
those before any of ``NORMAL``. The controller puts in the first two the news of work
under way: ``URGENT``, what ends a wait (a build's report written or its Job ended,
a canary verdict, requests held at the activator); ``AHEAD``, progress (a pod turning
Ready, a Deployment's counts, a build's pod waiting for a node). It finishes what a
user is waiting for, while a first pass of a new model only starts a build that takes
minutes: when a thousand models are applied at once, a finished build is not queued
behind them, nor behind their pods' start-up. The first lanes hold only what the
cluster reports, so they cannot starve the last. A worker may take from some lanes
only (``get(lanes=...)``): with workers kept for ``URGENT``, a build's report never
waits for a free worker behind minutes of first passes.

No timers per key: one heap of due times, one wake-up event. The clock is injected so
tests drive time by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

URGENT, AHEAD, NORMAL = 0, 1, 2
LANES = (URGENT, AHEAD, NORMAL)


class WorkQueue(Generic[K]):
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        base_backoff_s: float = 0.5,
        max_backoff_s: float = 300.0,
        on_take: Callable[[int, float], None] | None = None,
    ) -> None:
        """``on_take(lane, seconds)`` hears how long each key waited past its due time
        for a worker (the queue's own delay, not the one a key asked for)."""
        self._clock = clock
        self._on_take = on_take
        self._base = base_backoff_s
        self._cap = max_backoff_s
        self._heaps: tuple[list[tuple[float, int, K]], ...] = tuple([] for _ in LANES)
        self._due: dict[K, tuple[float, int]] = {}  # waiting keys: when due, which lane
        self._processing: set[K] = set()
        self._dirty: dict[K, tuple[float, int]] = {}  # added while processing
        self._failures: dict[K, int] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()

    # ---- adding --------------------------------------------------------------------
    def add(self, key: K, after_s: float = 0.0, lane: int = NORMAL) -> None:
        """Ask for a pass of ``key`` in ``after_s`` seconds (now by default). An earlier
        request already waiting wins, and so does the more urgent lane; a later one
        never delays it."""
        wanted = (self._clock() + max(after_s, 0.0), lane)
        if key in self._processing:
            self._dirty[key] = _sooner(self._dirty.get(key), wanted)
            return
        merged = _sooner(self._due.get(key), wanted)
        if merged == self._due.get(key):
            return
        self._due[key] = merged
        heapq.heappush(self._heaps[merged[1]], (merged[0], next(self._seq), key))
        self._wake.set()

    def forget(self, key: K) -> None:
        """The model is gone: drop its pending pass and its failures."""
        self._due.pop(key, None)
        self._dirty.pop(key, None)
        self._failures.pop(key, None)

    # ---- taking --------------------------------------------------------------------
    def _pop_due(self, lanes: tuple[int, ...] = LANES) -> tuple[K | None, float | None]:
        """A due key of ``lanes``, the most urgent lane first, or None with the seconds
        until the next one (None: nothing waits)."""
        waits = []
        for lane in sorted(lanes):
            heap = self._heaps[lane]
            while heap:
                due, _, key = heap[0]
                if self._due.get(key) != (due, lane):  # superseded, moved, or forgotten
                    heapq.heappop(heap)
                    continue
                wait = due - self._clock()
                if wait > 0:
                    waits.append(wait)
                    break
                heapq.heappop(heap)
                del self._due[key]
                self._processing.add(key)
                if self._on_take is not None:
                    self._on_take(lane, -wait)
                return key, None
        return None, min(waits, default=None)

    async def get(self, lanes: tuple[int, ...] = LANES) -> K:
        """Wait for a key of ``lanes`` that is due and not held by another worker (a
        worker kept for the news asks for those lanes only)."""
        while True:
            key, wait = self._pop_due(lanes)
            if key is not None:
                return key
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    def done(self, key: K, requeue_after_s: float | None = None, failed: bool = False) -> float:
        """The pass of ``key`` ended. ``failed``: retry after the key's back-off;
        otherwise ``requeue_after_s`` asks for the next pass (None: only on a change).
        Returns the back-off applied (0 when none)."""
        self._processing.discard(key)
        delay: float | None = requeue_after_s
        backoff = 0.0
        if failed:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            backoff = min(self._base * 2.0**failures, self._cap)
            delay = backoff if delay is None else min(delay, backoff)
        else:
            self._failures.pop(key, None)
        dirty = self._dirty.pop(key, None)
        if dirty is not None:
            # A change came during the pass: handle it, but not before a back-off ends.
            self.add(key, max(dirty[0] - self._clock(), backoff), dirty[1])
        if delay is not None:
            self.add(key, delay)
        return backoff

    # ---- looking -------------------------------------------------------------------
    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    def __len__(self) -> int:
        """Keys waiting (due or not), not counting those being processed."""
        return len(self._due)

    def processing(self) -> int:
        return len(self._processing)


def _sooner(waiting: tuple[float, int] | None, wanted: tuple[float, int]) -> tuple[float, int]:
    """Two requests for one key merged: the earlier due time, the more urgent lane."""
    if waiting is None:
        return wanted
    return min(waiting[0], wanted[0]), min(waiting[1], wanted[1])
