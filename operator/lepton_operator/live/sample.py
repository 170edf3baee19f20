"""What one read of a model's live figures returns, or why there is none.

Plain data with no client behind it, so the planner and tests can build and read these
without Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Reason = Literal["PrometheusUnreachable", "QueryFailed", "NoData"]


@dataclass(frozen=True)
class LiveSample:
    """One model's figures at one instant (every query evaluated at ``timestamp``).

    ``None`` means Prometheus had no number: a latency summary with no observations in
    its window, a ratio of two zero rates, or GPU figures on a CPU pool.
    Units: requests per second, milliseconds, and a fraction 0..1 for the GPU.
    """

    timestamp: float  # Unix seconds
    request_rate_rps: float
    failure_rate_rps: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    queue_mean_ms: float | None
    queue_p95_ms: float | None
    gpu_utilization: float | None
    cache_hit_rps: float | None = None  # answered by Triton's response cache

    @property
    def model_rps(self) -> float:
        """Requests the model itself ran: what replicas are sized for. A response-cache
        hit is answered from memory in microseconds and needs no model instance."""
        return max(self.request_rate_rps - (self.cache_hit_rps or 0.0), 0.0)

    @property
    def cache_hit_rate(self) -> float | None:
        """The share of requests the response cache answered; None without a cache."""
        if self.cache_hit_rps is None or self.request_rate_rps <= 0:
            return None
        return min(self.cache_hit_rps / self.request_rate_rps, 1.0)


class MetricsUnavailable(Exception):
    """No sample could be read; ``reason`` is a condition reason a person can act on.

    - ``PrometheusUnreachable``: connection refused or reset, timeout, or HTTP 5xx.
    - ``QueryFailed``: Prometheus (or whatever answered at the URL) refused the query:
      HTTP 4xx, or an answer that is not the Prometheus API's.
    - ``NoData``: Prometheus answered, but holds no Triton series for this model yet
      (not scraped yet, or fewer than two scrapes inside the rate window).
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: Reason = reason
        self.message = message
