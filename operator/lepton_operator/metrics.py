"""The operator's own Prometheus metrics (``prometheus_client``), served on one port.

Per LeptonModel: predicted and observed p95 and the SLO's target, request rate, spend
per hour and the budget, Ready replicas per pool, status conditions, decisions by
reason, canary verdicts, build failures and durations; per reconcile: duration and
errors. Everything is derived from the reconcile outcome (spec, status and events), so
the metrics can never say something the status does not: a figure the status no longer
knows (no requests, so no p95; a pool drained to nothing; a deleted model) is removed,
not left at its last value for an alert to keep firing on.

Counters the alerts and dashboards take ``increase()`` of are created at 0 as soon as
the model (or build) is seen, so their first increment is a visible step from 0 rather
than a series that appears already at 1.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from lepton_operator.api.status import BuildStatus, Condition, LeptonModelStatus

MODEL = ["namespace", "model"]

RECONCILE_SECONDS = Histogram(
    "lepton_reconcile_duration_seconds", "Time of one reconcile pass.", ["trigger"]
)
RECONCILE_ERRORS = Counter(
    "lepton_reconcile_errors_total", "Reconcile passes that raised.", [*MODEL, "trigger"]
)
QUEUE_DEPTH = Gauge(
    "lepton_workqueue_depth",
    "Models waiting for a pass (due now or at a time they asked for): a depth that "
    "keeps growing means more changes than the workers can follow.",
)
# Where a pass's time goes: waiting for a worker, then each step (a report reaching its
# decision is both).
_SHORT = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
QUEUE_WAIT_SECONDS = Histogram(
    "lepton_workqueue_wait_seconds",
    "From when a model's pass was due to when a worker took it, by lane (urgent: a "
    "build's report written or its Job ended, a canary verdict, requests held at the "
    "activator; ahead: a rollout's pods and Deployments, a build's pod waiting for a "
    "node; normal: the rest).",
    ["lane"],
    buckets=_SHORT,
)
PASS_STEP_SECONDS = Histogram(
    "lepton_pass_step_seconds",
    "Time of each step of a pass: validate, build, canary, observe, plan, act, then "
    "write (the status patch and its Events).",
    ["step"],
    buckets=_SHORT,
)
FLEET_SAMPLES = Counter(
    "lepton_fleet_samples_total",
    "Reads of every model's live figures (one fixed set of grouped PromQL queries each).",
    ["result"],
)
SAMPLE_WAKES = Counter(
    "lepton_sample_wakes_total",
    "Passes the fleet sampler asked for: models whose figures moved, or whose plan waited on them.",
)
PREDICTED_P95 = Gauge("lepton_model_predicted_p95_ms", "Planner's predicted p95 latency.", MODEL)
OBSERVED_P95 = Gauge(
    "lepton_model_observed_p95_ms", "p95 latency Triton reported, via Prometheus.", MODEL
)
SLO_P95 = Gauge("lepton_model_slo_p95_ms", "The SLO's p95 latency (spec.slo.p95LatencyMs).", MODEL)
REQUEST_RATE = Gauge(
    "lepton_model_request_rate", "Successful inferences per second, via Prometheus.", MODEL
)
HOURLY_COST = Gauge("lepton_model_hourly_cost_usd", "Planned spend per hour.", MODEL)
OBSERVED_COST = Gauge(
    "lepton_model_observed_hourly_cost_usd",
    "Spend per hour of the Ready serving replicas (replicas x pool price).",
    MODEL,
)
BUDGET = Gauge(
    "lepton_model_budget_hourly_usd",
    "Spending limit per hour (spec.budget.maxHourlyUSD); absent without a budget.",
    MODEL,
)
REPLICAS = Gauge("lepton_model_replicas", "Ready serving replicas per pool.", [*MODEL, "pool"])
PHASE = Gauge("lepton_model_phase", "1 for the model's current phase.", [*MODEL, "phase"])
CONDITION = Gauge(
    "lepton_model_condition",
    "1 for each status condition's current status and reason (one series per type).",
    [*MODEL, "type", "status", "reason"],
)
DECISIONS = Counter(
    "lepton_model_decisions_total", "Serving decisions taken, by reason.", [*MODEL, "reason"]
)
CANARIES = Counter(
    "lepton_model_canary_results_total", "Canary verdicts on serving pods.", [*MODEL, "result"]
)
BUILD_FAILURES = Counter(
    "lepton_model_build_failures_total", "Build Jobs that failed, per pool.", [*MODEL, "pool"]
)
LAST_BUILD_SECONDS = Gauge(
    "lepton_model_last_build_duration_seconds",
    "Wall time of the model's last finished build Job per pool.",
    [*MODEL, "pool"],
)
BUILD_SECONDS = Histogram(
    "lepton_build_duration_seconds",
    "Wall time of finished build Jobs.",
    ["pool", "phase"],
    buckets=(30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)


@contextlib.contextmanager
def timed_step(step: str) -> Iterator[None]:
    """Observe how long the ``with`` body took as ``step`` of a pass."""
    started = time.perf_counter()
    try:
        yield
    finally:
        PASS_STEP_SECONDS.labels(step=step).observe(time.perf_counter() - started)


PER_MODEL = (
    RECONCILE_ERRORS,
    PREDICTED_P95,
    OBSERVED_P95,
    SLO_P95,
    REQUEST_RATE,
    HOURLY_COST,
    OBSERVED_COST,
    BUDGET,
    REPLICAS,
    PHASE,
    CONDITION,
    DECISIONS,
    CANARIES,
    BUILD_FAILURES,
    LAST_BUILD_SECONDS,
)
PHASES = ("Pending", "Building", "Deploying", "Ready", "Degraded", "Failed")
BUILD_PHASES = ("Succeeded", "Failed")
DECISION_REASONS = ("Decision", "RolledBack")
CANARY_REASONS = {"CanaryPassed": "passed", "NoReference": "skipped", "CanaryMismatch": "failed"}

# What was exported per model for the labelled families whose label values come and go
# (pools; a condition's status and reason), so that the ones gone can be removed.
_lock = threading.Lock()
_pools: dict[tuple[str, str], set[str]] = {}
_conditions: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}


class EventLike(Protocol):
    @property
    def reason(self) -> str: ...


def _number(value: Any) -> float | None:
    """A number from the raw spec (which may be invalid), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _dig(document: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(document, Mapping):
            return None
        document = document.get(key)
    return document


def _set_or_remove(gauge: Gauge, labels: tuple[str, str], value: Any) -> None:
    number = _number(value)
    if number is None:
        gauge.remove(*labels)
    else:
        gauge.labels(*labels).set(number)


def observe(
    namespace: str,
    model: str,
    status: LeptonModelStatus,
    events: Iterable[EventLike],
    previous_builds: Sequence[BuildStatus],
    spec: Mapping[str, Any] | None = None,
) -> None:
    labels = (namespace, model)
    if spec is not None:
        _set_or_remove(SLO_P95, labels, _dig(spec, "slo", "p95LatencyMs"))
        _set_or_remove(BUDGET, labels, _dig(spec, "budget", "maxHourlyUSD"))
    decision = status.decision
    if decision is not None:
        PREDICTED_P95.labels(*labels).set(decision.predicted_p95_ms or 0)
        HOURLY_COST.labels(*labels).set(decision.hourly_cost_usd)
    live = status.live
    if live is not None:
        # A sample without latency or traffic means they are unknown now (no requests,
        # or Prometheus failed): removed. Spend and replicas come from Kubernetes and
        # are kept until the next pass that records them.
        _set_or_remove(OBSERVED_P95, labels, live.p95_ms)
        _set_or_remove(REQUEST_RATE, labels, live.request_rate)
        if live.hourly_cost_usd is not None:
            OBSERVED_COST.labels(*labels).set(live.hourly_cost_usd)
        if live.replicas_by_pool is not None:
            _observe_replicas(labels, live.replicas_by_pool)
    for phase in PHASES:
        PHASE.labels(*labels, phase).set(1 if status.phase == phase else 0)
    _observe_conditions(labels, status.conditions)
    for reason in DECISION_REASONS:
        DECISIONS.labels(*labels, reason)  # created at 0
    for result in CANARY_REASONS.values():
        CANARIES.labels(*labels, result)
    for event in events:
        if event.reason in DECISION_REASONS:
            DECISIONS.labels(*labels, event.reason).inc()
        if event.reason in CANARY_REASONS:
            CANARIES.labels(*labels, CANARY_REASONS[event.reason]).inc()
    _observe_builds(labels, status.builds, previous_builds)


def _observe_replicas(labels: tuple[str, str], by_pool: Mapping[str, int]) -> None:
    with _lock:
        gone = _pools.get(labels, set()) - set(by_pool)
        _pools[labels] = set(by_pool)
    for pool, count in by_pool.items():
        REPLICAS.labels(*labels, pool).set(count)
    for pool in gone:
        REPLICAS.remove(*labels, pool)


def _observe_conditions(labels: tuple[str, str], conditions: Sequence[Condition]) -> None:
    now = {c.type: (c.status, c.reason) for c in conditions}
    with _lock:
        before = _conditions.get(labels, {})
        _conditions[labels] = now
    for type_, (state, reason) in now.items():
        CONDITION.labels(*labels, type_, state, reason).set(1)
    for type_, (state, reason) in before.items():
        if now.get(type_) != (state, reason):
            CONDITION.remove(*labels, type_, state, reason)


def _observe_builds(
    labels: tuple[str, str], builds: Sequence[BuildStatus], previous: Sequence[BuildStatus]
) -> None:
    finished_before = {b.job for b in previous if b.phase != "Running"}
    for build in builds:
        pool = build.pool
        BUILD_FAILURES.labels(*labels, pool)  # created at 0 while the build runs
        for phase in BUILD_PHASES:
            BUILD_SECONDS.labels(pool, phase)
        seconds = build.duration_seconds
        if seconds is not None:
            LAST_BUILD_SECONDS.labels(*labels, pool).set(seconds)
        if build.job in finished_before or build.phase == "Running":
            continue
        if seconds is not None:
            BUILD_SECONDS.labels(pool, build.phase).observe(seconds)
        if build.phase == "Failed":
            BUILD_FAILURES.labels(*labels, pool).inc()


def reconcile_failed(namespace: str, model: str, trigger: str) -> None:
    RECONCILE_ERRORS.labels(namespace, model, trigger).inc()


def reconciled(namespace: str, model: str, trigger: str) -> None:
    """A pass that did not raise: its error series exists, at 0 until one does."""
    RECONCILE_ERRORS.labels(namespace, model, trigger)


def forget(namespace: str, model: str) -> None:
    """Remove every series of a deleted model (its alerts resolve, its panels end)."""
    with _lock:
        _pools.pop((namespace, model), None)
        _conditions.pop((namespace, model), None)
    for family in PER_MODEL:
        family.remove_by_labels({"namespace": namespace, "model": model})


def serve(port: int) -> None:
    start_http_server(port)
