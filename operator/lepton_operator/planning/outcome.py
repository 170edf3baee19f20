"""What one decision pass concludes: a plan to serve, or no plan with the reason.

The live planner (``planner.plan``) decides, before any traffic as after it; these are
the shapes the reconcile pass, advisory mode and the Events read, free of the
planner's internals (its options, memory and corrections).
"""

from __future__ import annotations

from dataclasses import dataclass


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
    # The budget is why (every plan costs more): only then is WithinBudget False. No
    # accepted variant or no schedulable pool leaves nothing to weigh against it.
    over_budget: bool = False
