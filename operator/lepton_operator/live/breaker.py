"""One failure, told to every model: a cool-off after Prometheus could not be reached.

Each reconcile pass asks Prometheus about one model. When Prometheus is down (or its
name does not resolve, which can take longer than any request timeout), every pass
would wait out the same failure: with a thousand models on a 5 s timer that stalls the
whole loop. After one ``PrometheusUnreachable``, the breaker answers the same at once
for ``cool_off`` seconds; the first pass after it asks Prometheus again. Query errors
and ``NoData`` are about one model's query and never open it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lepton_operator.live.sample import MetricsUnavailable


class UnreachableBreaker:
    def __init__(self, cool_off: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cool_off = cool_off
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._last: MetricsUnavailable | None = None

    def check(self) -> None:
        """Raise the last failure, said to be recent, while cooling off."""
        with self._lock:
            left = self._open_until - self._clock()
            last = self._last
        if last is not None and left > 0:
            raise MetricsUnavailable(last.reason, f"{last.message} (asked again in {left:.0f} s)")

    def record(self, error: MetricsUnavailable | None) -> None:
        """What the last real query came to: None for an answer."""
        with self._lock:
            if error is not None and error.reason == "PrometheusUnreachable":
                if self.cool_off > 0:
                    self._open_until = self._clock() + self.cool_off
                    self._last = error
            elif error is None:
                self._open_until, self._last = 0.0, None
