"""The first decision for a freshly built model: which variant, on which pool, how many.

Before any traffic is observed the only load to plan for is the floor the spec asks
for (minReplicas, minThroughputRps). The live planner refines this from Prometheus;
this function is the part both share: cheapest plan that meets the p95 SLO, never
over budget, with a reason a person can read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """One accepted (variant, pool) with the figures planning needs."""

    variant: str
    pool: str
    p95_ms: float
    throughput_rps: float
    hourly_price_usd: float


@dataclass(frozen=True)
class Plan:
    variant: str
    pool: str
    replicas: int
    predicted_p95_ms: float
    hourly_cost_usd: float
    slo_met: bool
    within_budget: bool
    reason: str


@dataclass(frozen=True)
class NoPlan:
    reason: str


def _plan(choice: tuple[Candidate, int, float], slo_met: bool, reason: str) -> Plan:
    candidate, replicas, cost = choice
    return Plan(
        variant=candidate.variant,
        pool=candidate.pool,
        replicas=replicas,
        predicted_p95_ms=candidate.p95_ms,
        hourly_cost_usd=cost,
        slo_met=slo_met,
        within_budget=True,
        reason=reason,
    )


def _replicas(
    candidate: Candidate, min_replicas: int, min_throughput_rps: float | None, pinned: int | None
) -> int:
    if pinned is not None:
        return pinned
    needed = max(min_replicas, 1)
    if min_throughput_rps and candidate.throughput_rps > 0:
        needed = max(needed, math.ceil(min_throughput_rps / candidate.throughput_rps))
    return needed


def initial_plan(
    candidates: list[Candidate],
    slo_p95_ms: float,
    min_replicas: int,
    max_replicas: int,
    min_throughput_rps: float | None = None,
    budget_usd: float | None = None,
    pinned_replicas: int | None = None,
) -> Plan | NoPlan:
    if not candidates:
        return NoPlan("no variant passed its build and accuracy guard on any allowed pool")
    sized = []
    for c in candidates:
        replicas = min(
            _replicas(c, min_replicas, min_throughput_rps, pinned_replicas), max_replicas
        )
        sized.append((c, replicas, replicas * c.hourly_price_usd))

    def affordable(cost: float) -> bool:
        return budget_usd is None or cost <= budget_usd + 1e-9

    meeting = sorted(
        (s for s in sized if s[0].p95_ms <= slo_p95_ms),
        key=lambda s: (s[2], s[0].p95_ms, s[0].variant, s[0].pool),
    )
    within = [s for s in meeting if affordable(s[2])]
    if within:
        c, replicas, cost = within[0]
        return _plan(
            within[0],
            slo_met=True,
            reason=(
                f"cheapest plan meeting p95 {slo_p95_ms:g} ms: {c.variant} on {c.pool}, "
                f"{replicas} replica(s), predicted p95 {c.p95_ms:.1f} ms, ${cost:.2f}/h "
                f"(of {len(meeting)} option(s) meeting the SLO)"
            ),
        )
    fallback = sorted(
        (s for s in sized if affordable(s[2])),
        key=lambda s: (s[0].p95_ms, s[2], s[0].variant, s[0].pool),
    )
    cheapest_slo = (
        f"; the cheapest plan meeting it costs ${meeting[0][2]:.2f}/h, over the "
        f"budget ${budget_usd:.2f}/h"
        if meeting and budget_usd is not None
        else "; no variant meets it on any allowed pool"
    )
    if fallback:
        c, replicas, cost = fallback[0]
        return _plan(
            fallback[0],
            slo_met=False,
            reason=(
                f"no affordable plan meets p95 {slo_p95_ms:g} ms{cheapest_slo}; serving the "
                f"fastest affordable: {c.variant} on {c.pool}, predicted p95 "
                f"{c.p95_ms:.1f} ms, ${cost:.2f}/h"
            ),
        )
    cheapest = min(sized, key=lambda s: s[2])
    return NoPlan(
        f"even the cheapest plan ({cheapest[0].variant} on {cheapest[0].pool}, "
        f"${cheapest[2]:.2f}/h) is over the budget ${budget_usd or 0:.2f}/h"
    )
