"""One Prometheus sampler for every model: a fixed set of grouped queries per interval.

Each interval the sampler reads the figures of all models at once
(``PrometheusMetrics.sample_all``: the same queries at 10 models or 10,000), keeps the
snapshot, and wakes only the models whose figures moved enough to matter or whose plan
waits for the next figures (``live.wake``). A pass reads its model's figures from the
snapshot (``sample``), so no pass ever queries Prometheus itself, and a dead Prometheus
costs one timeout per interval, not one per model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from lepton_operator import metrics
from lepton_operator.live.sample import LiveSample, MetricsUnavailable
from lepton_operator.live.wake import Seen, to_wake

Key = tuple[str, str]  # (namespace, model)
ReadAll = Callable[[], dict[Key, LiveSample]]

logger = logging.getLogger(__name__)


class FleetSampler:
    """The latest fleet snapshot, and the loop that refreshes it. ``sample`` is called
    from the workers' threads: a snapshot is replaced whole, never changed in place."""

    def __init__(
        self, read_all: ReadAll, interval_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._read_all = read_all
        self.interval_s = interval_s
        self._clock = clock
        self._samples: dict[Key, LiveSample] = {}
        self._error: MetricsUnavailable | None = MetricsUnavailable(
            "NoData", "the operator has not read Prometheus yet"
        )
        self._woken_with: dict[Key, Seen] = {}
        self.taken_at: float | None = None

    # ---- the reconcile pass's source (LiveSource) ----------------------------------
    def sample(self, namespace: str, model: str) -> LiveSample:
        """The model's figures from the latest snapshot; raises ``MetricsUnavailable``
        with the reason the snapshot has none."""
        if self._error is not None:
            raise self._error
        found = self._samples.get((namespace, model))
        if found is None:
            raise MetricsUnavailable(
                "NoData",
                f"no Triton request series for {namespace}/{model} "
                "(not scraped yet, or not serving)",
            )
        return found

    def seen(self, key: Key) -> Seen:
        at = self.taken_at or 0.0
        if self._error is not None:
            # Figures were read for it before (Triton serves it and is scraped): it
            # plans on them, so it says again that it is blind.
            return Seen(None, self._error.reason, at, busy=key in self._samples)
        found = self._samples.get(key)
        return Seen(found, "" if found is not None else "NoData", at)

    # ---- refreshing ----------------------------------------------------------------
    def refresh(self) -> None:
        """One read of every model's figures (blocking: run it in a thread)."""
        try:
            samples = self._read_all()
        except MetricsUnavailable as error:
            if self._error is None or self._error.reason != error.reason:
                logger.warning("fleet sample failed: %s", error)  # once, not every interval
            self._error = error  # the last figures stay: who had traffic before it
            metrics.FLEET_SAMPLES.labels(result=error.reason).inc()
        else:
            if self._error is not None and self.taken_at is not None:
                logger.info("fleet sample read again after: %s", self._error.reason)
            self._samples, self._error = samples, None
            metrics.FLEET_SAMPLES.labels(result="ok").inc()
        self.taken_at = self._clock()

    def to_wake(self, known: set[Key], waiting: set[Key]) -> set[Key]:
        """The models this snapshot should wake; remembers what each was woken with."""
        now = {key: self.seen(key) for key in known}
        chosen = to_wake(known, self._woken_with, now, waiting)
        for key in chosen:
            self._woken_with[key] = now[key]
        for gone in set(self._woken_with) - known:
            del self._woken_with[gone]
        return chosen

    async def run(
        self,
        known: Callable[[], set[Key]],
        waiting: Callable[[], set[Key]],
        wake: Callable[[set[Key]], None],
    ) -> None:
        """Refresh every ``interval_s`` and wake the models that should hear of it."""
        while True:
            started = time.monotonic()
            await asyncio.to_thread(self.refresh)
            wake(self.to_wake(known(), waiting()))
            await asyncio.sleep(max(self.interval_s - (time.monotonic() - started), 0.0))
