"""How fast one replica of a variant answers at a given arrival rate.

From the builder's measured profiles, two numbers per (variant, pool): the p95 of a
lone request (batch 1) and the most a replica can serve (the highest throughput among
batch sizes whose own p95 meets the SLO: Triton's dynamic batcher forms larger batches
only as the queue grows). Between those, queueing: a replica at utilisation rho waits
like an M/M/1 queue, whose sojourn time is exponential, so its 95th percentile adds
ln(20) service times scaled by rho / (1 - rho). Crude on purpose: it needs nothing the
build did not measure, it is monotone in load and replicas (so sizing is a search),
and the live planner corrects it with the p95 Triton actually reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lepton_operator.report import Profile

P95_TAIL = math.log(20.0)  # P(T > t) = exp(-t / mean) = 0.05 at t = ln(20) * mean
# Over the SLO at any count, replicas are added only while they bring the p95 this close
# to the pool's best (5%): beyond it they cost and answer no faster.
NEAR_FASTEST = 0.05


@dataclass(frozen=True)
class Capacity:
    """One replica of ``variant`` on ``pool``."""

    variant: str
    pool: str
    base_p95_ms: float
    max_rps: float
    # Seconds to load its artifact: with the pool's provisioning delay, how long a
    # replica asked for now takes to serve (the cold start the planner plans ahead for).
    load_seconds: float = 0.0
    # The cold start last observed on the cluster (pod created to Ready), if any: the
    # planner uses whichever is longer, this or the pool's provisioning plus the load.
    observed_cold_start_seconds: float | None = None
    # What ``max_rps`` was multiplied by from the profile's (``correction.scaled``): the
    # throughput the observed latency credited it with.
    throughput_scale: float = 1.0

    def p95_ms(self, rate_rps: float, replicas: int, correction: float = 1.0) -> float:
        """Predicted p95 with the load spread evenly; ``inf`` when it cannot keep up.
        Without load it is a lone request's, even at zero replicas (scale-to-zero idle:
        nothing is overloaded; the cold start the next request waits is the planner's
        to state, not a latency of requests served)."""
        if rate_rps <= 0:
            return self.base_p95_ms * correction
        if replicas <= 0 or self.max_rps <= 0:
            return math.inf
        rho = rate_rps / (replicas * self.max_rps)
        if rho >= 1.0:
            return math.inf
        queueing = P95_TAIL * (1000.0 / self.max_rps) * rho / (1.0 - rho)
        return (self.base_p95_ms + queueing) * correction

    def replicas_for(
        self,
        rate_rps: float,
        slo_ms: float,
        min_replicas: int,
        max_replicas: int,
        correction: float = 1.0,
    ) -> int | None:
        """Fewest replicas in [min, max] meeting the SLO at ``rate_rps``; None if none do."""
        floor = max(min_replicas, 1 if rate_rps > 0 else min_replicas)
        if rate_rps <= 0:
            # No load: more replicas would not make a lone request faster, and a lone
            # request slower than the SLO misses it at any count.
            meets = self.p95_ms(0.0, floor, correction) <= slo_ms
            return floor if floor <= max_replicas and meets else None
        if self.max_rps <= 0:
            return None
        # Below this count the replicas cannot keep up at all; start the search there.
        start = max(floor, math.floor(rate_rps / self.max_rps))
        for replicas in range(start, max_replicas + 1):
            if self.p95_ms(rate_rps, replicas, correction) <= slo_ms:
                return replicas
        return None

    def replicas_near_fastest(
        self,
        rate_rps: float,
        min_replicas: int,
        max_replicas: int,
        correction: float = 1.0,
        tolerance: float = NEAR_FASTEST,
    ) -> int:
        """When no count meets the SLO: the fewest replicas in [min, max] whose p95 is
        within ``tolerance`` of the most this pool can do. A lone request slower than
        the SLO stays slower at any count; past the point where queueing is gone, more
        replicas only cost (three replicas held at 0.1 req/s once, for nothing)."""
        fastest = self.p95_ms(rate_rps, max_replicas, correction)
        if not math.isfinite(fastest):
            return max_replicas
        for replicas in range(max(min_replicas, 1 if rate_rps > 0 else 0), max_replicas):
            if self.p95_ms(rate_rps, replicas, correction) <= fastest * (1.0 + tolerance):
                return replicas
        return max_replicas


def capacity_from_profiles(
    variant: str,
    pool: str,
    profiles: list[Profile],
    slo_ms: float,
    load_seconds: float | None = None,
) -> Capacity | None:
    if not profiles:
        return None
    lone = min(profiles, key=lambda p: p.batch_size)
    usable = [p for p in profiles if p.p95_ms <= slo_ms] or [lone]
    return Capacity(
        variant=variant,
        pool=pool,
        base_p95_ms=lone.p95_ms,
        max_rps=max(p.throughput_rps for p in usable),
        load_seconds=load_seconds or 0.0,
    )
