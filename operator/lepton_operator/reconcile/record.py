"""How a pass records what it decided and observed into the typed status: pure.

Plain data in (the spec, the plan, pods and Deployments as read, a live sample), the
status fields out; the pass calls these, and tests call the very same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lepton_operator import activation, constants
from lepton_operator.api.spec import LeptonModelSpec, PoolSpec
from lepton_operator.api.status import (
    CanaryFailure,
    ColdStart,
    ConditionType,
    Decision,
    LeptonModelStatus,
    LiveFigures,
    PoolBackoffStatus,
    VariantStatus,
)
from lepton_operator.canary.check import CanaryResult
from lepton_operator.live.sample import LiveSample
from lepton_operator.observation import (
    cold_starts,
    hourly_spend,
    ready_since,
    replicas_by_pool,
    rounded,
)
from lepton_operator.planning import Plan
from lepton_operator.planning.backoff import Avoidance, PoolBackoff, pools_to_avoid
from lepton_operator.reconcile.state import PassState
from lepton_operator.timestamps import format_time, parse_time


def epoch(stamp: str) -> float:
    return parse_time(stamp).timestamp()


def cold_start(
    pools: Sequence[PoolSpec],
    accepted: Sequence[VariantStatus],
    observed: Sequence[ColdStart],
    decision: Decision | None,
) -> float | None:
    """The cold start a request at zero would wait: that of the option serving now,
    else the shortest any accepted option offers; None with no accepted option."""
    provisioning = {p.name: float(p.provisioning_seconds) for p in pools}

    def of(row: VariantStatus) -> float:
        seen = [c.seconds for c in observed if (c.pool, c.variant) == (row.pool, row.variant)]
        return activation.cold_start_s(provisioning.get(row.pool, 0.0), row.load_seconds, seen)

    now = (decision.pool, decision.variant) if decision else None
    serving = [r for r in accepted if (r.pool, r.variant) == now]
    return of(serving[0]) if serving else min((of(r) for r in accepted), default=None)


def with_floor(spec: LeptonModelSpec, floor: int) -> LeptonModelSpec:
    """``spec`` planned with at least ``floor`` replicas (demand at the activator)."""
    if floor <= spec.scaling.min_replicas:
        return spec
    scaling = spec.scaling.model_copy(
        update={"min_replicas": floor, "max_replicas": max(spec.scaling.max_replicas, floor)}
    )
    return spec.model_copy(update={"scaling": scaling})


def slo_message(plan: Plan, slo_ms: float) -> str:
    """SLOMet's message: what serves and the verdict, never the figures (they move with
    every sample and live in status.decision.reason)."""
    serving = f"{plan.variant} on {plan.pool} x{plan.replicas}"
    if plan.slo_met:
        return f"{serving} is predicted within p95 {slo_ms:g} ms (status.decision.reason)"
    cause = (
        "no option within the budget meets it"
        if not plan.within_budget
        else ("no option meets it at this load")
    )
    return f"{serving} is predicted over p95 {slo_ms:g} ms: {cause} (status.decision.reason)"


def forget_backoff(status: LeptonModelStatus, pool: str) -> None:
    """Serving Ready on a pool ends its back-off at once (the next failure there starts
    again from the pool's timeout)."""
    status.pool_backoff = [b for b in status.pool_backoff if b.pool != pool]


def unschedulable_pools(pods: list[dict[str, Any]], limits: dict[str, float], now: str) -> set[str]:
    """Pools whose serving pods have waited for a node longer than the pool takes to
    provision one (at least config.serving.nodeWaitSeconds): the planner falls back to
    another."""
    waiting: set[str] = set()
    for pod in pods:
        pool = (pod["metadata"].get("labels") or {}).get(constants.POOL_LABEL, "")
        created = pod["metadata"].get("creationTimestamp")
        if (pod.get("status") or {}).get("phase") != "Pending" or pool not in limits:
            continue
        if (pod.get("spec") or {}).get("nodeName") or not created:
            continue
        if epoch(now) - parse_time(created).timestamp() > limits[pool]:
            waiting.add(pool)
    return waiting


def pool_timeouts(pools: Sequence[PoolSpec], node_wait_s: float) -> dict[str, float]:
    """How long serving pods may wait for a node: twice the pool's provisioning time,
    at least ``node_wait_s`` (config.serving.nodeWaitSeconds, a minute by default: a
    node that comes at all comes by then)."""
    return {p.name: max(2.0 * p.provisioning_seconds, node_wait_s) for p in pools}


def avoid_pools(
    pools: Sequence[PoolSpec],
    status: LeptonModelStatus,
    now: str,
    pods: list[dict[str, Any]],
    node_wait_s: float,
) -> Avoidance:
    """Pools whose serving pods wait for a node past the timeout, and those still
    backing off from an earlier wait; ``status.poolBackoff`` carries the back-off
    from pass to pass, ``status.coldStarts`` what the pods took to turn Ready."""
    limits = pool_timeouts(pools, node_wait_s)
    previous = [
        PoolBackoff(b.pool, b.failures, parse_time(b.retry_at).timestamp())
        for b in status.pool_backoff
    ]
    status.cold_starts = cold_starts(pods, status.cold_starts)
    avoidance = pools_to_avoid(unschedulable_pools(pods, limits, now), previous, limits, epoch(now))
    status.pool_backoff = [
        PoolBackoffStatus(pool=b.pool, failures=b.failures, retry_at=format_time(b.retry_at_s))
        for b in avoidance.backoffs
    ]
    return avoidance


def record_canaries(
    state: PassState, build: str, results: Sequence[CanaryResult]
) -> set[tuple[str, str]]:
    """The verdicts into Events, the CanaryPassed condition and ``status.canaryFailures``
    (this build's only); returns the (pool, variant) pairs that failed a canary of this
    build, which the plan must not choose again."""
    failures = [f for f in state.status.canary_failures if f.build_hash == build]
    known = {(f.pool, f.variant) for f in failures}
    for result in results:
        state.tell(
            "Normal" if result.passed else "Warning",
            result.reason,
            f"pod {result.pod}: {result.message}",
        )
        state.condition(ConditionType.CANARY, result.passed, result.reason, result.message)
        if result.passed or (result.pool, result.variant) in known:
            continue
        known.add((result.pool, result.variant))
        failures.append(
            CanaryFailure(
                variant=result.variant,
                pool=result.pool,
                build_hash=build,
                message=result.message,
                time=state.now,
            )
        )
    state.status.canary_failures = failures
    return known


def record_decision(state: PassState, plan: Plan) -> None:
    """``status.decision`` (its time moves only when variant, pool or replicas do, with
    a Decision Event), and the planned p95 and spend until observed ones replace them."""
    previous = state.status.decision
    chosen = (plan.variant, plan.pool, plan.replicas)
    since = state.now
    if previous is not None and (previous.variant, previous.pool, previous.replicas) == chosen:
        since = previous.time
    else:
        state.tell("Normal", "Decision", plan.reason)
    state.status.decision = Decision(
        variant=plan.variant,
        pool=plan.pool,
        replicas=plan.replicas,
        predicted_p95_ms=round(plan.predicted_p95_ms, 3),
        hourly_cost_usd=round(plan.hourly_cost_usd, 4),
        reason=plan.reason,
        time=since,
    )
    state.status.p95_ms = round(plan.predicted_p95_ms, 3)
    state.status.hourly_cost_usd = round(plan.hourly_cost_usd, 4)


def live_figures(sample: LiveSample, now: str) -> LiveFigures:
    """``status.live`` from a fresh sample (spend and replicas are added from
    Kubernetes by ``record_live``)."""
    return LiveFigures(
        p95_ms=rounded(sample.p95_ms, 2),
        p99_ms=rounded(sample.p99_ms, 2),
        mean_ms=rounded(sample.mean_ms, 2),
        queue_p95_ms=rounded(sample.queue_p95_ms, 2),
        request_rate=rounded(sample.request_rate_rps),
        failure_rate=rounded(sample.failure_rate_rps),
        gpu_utilization=rounded(sample.gpu_utilization),
        cache_hit_rate=rounded(sample.cache_hit_rate),
        time=now,
    )


def record_live(
    pools: Sequence[PoolSpec],
    deployments: list[dict[str, Any]],
    status: LeptonModelStatus,
    now: str,
    fresh: bool,
) -> None:
    """Spend and replicas from Kubernetes (known even when Prometheus is not); the
    P95 and $/H columns show observed figures once there are any. ``fresh``: this
    pass read the live figures (the spend is written with them, never between)."""
    by_pool = replicas_by_pool(deployments)
    spend = round(hourly_spend(by_pool, {p.name: p.hourly_price_usd for p in pools}), 4)
    if any(by_pool.values()):
        status.hourly_cost_usd = spend  # observed; the planned figure until then
    live = status.live
    if live is not None and (fresh or live.time == now):
        live.hourly_cost_usd = spend
        live.replicas_by_pool = by_pool
    if live is not None and live.p95_ms is not None:
        status.p95_ms = live.p95_ms


def not_scraped(pods: list[dict[str, Any]], now: str, grace_s: float, url: str) -> str | None:
    """Why Prometheus has no Triton series for a model whose pods have served for
    longer than ``grace_s`` (two rate windows and a sample: time enough for any scrape
    configuration that works): Triton is not scraped. None while none has served that
    long (not scraped *yet* is the NoData reason)."""
    since = [s for s in ready_since(pods) if epoch(now) - epoch(s) >= grace_s]
    if not since:
        return None
    return (
        f"Prometheus at {url} answers, but holds no Triton series for this model although "
        f"{len(since)} serving pod(s) have been Ready since {min(since)}: Triton's metrics "
        f"port ({constants.METRICS_PORT}, /metrics) is not scraped. With the Prometheus "
        "Operator, set config.serving.serviceMonitor; otherwise add a scrape job for the "
        f"pods labelled {constants.MODEL_LABEL}. config.prometheus.rateWindow must span two "
        "scrapes"
    )
