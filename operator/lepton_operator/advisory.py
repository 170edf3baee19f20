"""Advisory mode (``spec.mode: advisory``): the planner's decision as a recommendation.

A team adopting an automatic planner wants to read what it would do, and what that
would save, beside what serves now, before it lets the planner serve. So in advisory
mode the reconcile pass plans exactly as in active mode (the same ``decide``, the same
memory), writes the plan to ``status.recommendation`` and serves ``spec.pinned``
instead, or, without a pin, touches no serving object at all. Switching to active
lets the next pass apply the planner's plan through the usual migration (new pool
Ready first, then the old one drained).

Pure: plain data in, plain data out, so tests call the very code the operator runs.
"""

from __future__ import annotations

from lepton_operator.api.spec import LeptonModelSpec, Pinned, PoolSpec
from lepton_operator.api.status import Recommendation, VariantStatus
from lepton_operator.planning import Plan


def pinned_plan(
    pinned: Pinned, spec: LeptonModelSpec, pools: list[PoolSpec], accepted: list[VariantStatus]
) -> Plan | str:
    """The pinned serving as a plan the serving code applies, or why it cannot serve:
    a pool that is not one of the model's, or a variant that was not built or not
    accepted there (a pin never serves what the accuracy guard or the canary refused)."""
    pool = next((p for p in pools if p.name == pinned.pool), None)
    if pool is None:
        return (
            f"spec.pinned.pool: {pinned.pool} is not one of the model's pools "
            f"({', '.join(p.name for p in pools)})"
        )
    row = next((r for r in accepted if (r.pool, r.variant) == (pinned.pool, pinned.variant)), None)
    if row is None:
        return (
            f"spec.pinned.variant: {pinned.variant} on {pinned.pool} was not built or not "
            "accepted (status.variants says why); nothing is served"
        )
    cost = pinned.replicas * pool.hourly_price_usd
    p95 = row.p95_ms or 0.0
    return Plan(
        variant=pinned.variant,
        pool=pinned.pool,
        replicas=pinned.replicas,
        predicted_p95_ms=p95,
        hourly_cost_usd=cost,
        slo_met=p95 <= spec.slo.p95_latency_ms,
        within_budget=spec.budget is None or cost <= spec.budget.max_hourly_usd + 1e-9,
        reason=f"pinned by spec.pinned (advisory mode): {pinned.replicas} replica(s) of "
        f"{pinned.variant} on {pinned.pool}, profiled p95 {p95:.1f} ms, ${cost:.2f}/h",
    )


def recommendation(
    plan: Plan, serving_cost_usd: float | None, previous: Recommendation | None, now: str
) -> Recommendation:
    """``status.recommendation`` for ``plan``; ``serving_cost_usd`` is the spend per hour of
    what serves now (None: nothing serves, so no saving is claimed). ``time`` moves only
    when variant, pool or replicas change, as ``status.decision.time`` does."""
    same = previous is not None and not recommendation_changed(previous, plan)
    return Recommendation(
        variant=plan.variant,
        pool=plan.pool,
        replicas=plan.replicas,
        predicted_p95_ms=round(plan.predicted_p95_ms, 3),
        hourly_cost_usd=round(plan.hourly_cost_usd, 4),
        saving_usd_per_hour=(
            None if serving_cost_usd is None else round(serving_cost_usd - plan.hourly_cost_usd, 4)
        ),
        reason=plan.reason,
        time=previous.time if same and previous is not None else now,
    )


def recommendation_changed(previous: Recommendation | None, current: Plan | Recommendation) -> bool:
    """Worth an Event: a first recommendation, or another variant, pool or count."""
    return previous is None or (previous.variant, previous.pool, previous.replicas) != (
        current.variant,
        current.pool,
        current.replicas,
    )


def recommendation_message(current: Recommendation) -> str:
    saving = current.saving_usd_per_hour
    against = (
        f"; saves ${saving:.2f}/h against what serves"
        if saving is not None and saving >= 0
        else f"; costs ${-saving:.2f}/h more than what serves"
        if saving is not None
        else ""
    )
    return (
        f"would serve {current.replicas} replica(s) of {current.variant} on "
        f"{current.pool} (${current.hourly_cost_usd:.2f}/h{against}): {current.reason}"
    )
