"""The operator's own Prometheus metrics (``prometheus_client``), served on one port.

Per LeptonModel: predicted and observed p95, request rate, spend per hour, Ready
replicas per pool, decisions by reason, canary verdicts and build durations; per
reconcile: duration and errors. Everything is derived from the reconcile outcome
(status and events), so the metrics can never say something the status does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from prometheus_client import Counter, Gauge, Histogram, start_http_server

MODEL = ["namespace", "model"]

RECONCILE_SECONDS = Histogram(
    "lepton_reconcile_duration_seconds", "Time of one reconcile pass.", ["trigger"]
)
RECONCILE_ERRORS = Counter(
    "lepton_reconcile_errors_total", "Reconcile passes that raised.", ["trigger"]
)
PREDICTED_P95 = Gauge("lepton_model_predicted_p95_ms", "Planner's predicted p95 latency.", MODEL)
OBSERVED_P95 = Gauge(
    "lepton_model_observed_p95_ms", "p95 latency Triton reported, via Prometheus.", MODEL
)
REQUEST_RATE = Gauge(
    "lepton_model_request_rate", "Successful inferences per second, via Prometheus.", MODEL
)
HOURLY_COST = Gauge("lepton_model_hourly_cost_usd", "Planned spend per hour.", MODEL)
OBSERVED_COST = Gauge(
    "lepton_model_observed_hourly_cost_usd",
    "Spend per hour of the Ready serving replicas (replicas x pool price).",
    MODEL,
)
REPLICAS = Gauge("lepton_model_replicas", "Ready serving replicas per pool.", [*MODEL, "pool"])
PHASE = Gauge("lepton_model_phase", "1 for the model's current phase.", [*MODEL, "phase"])
DECISIONS = Counter(
    "lepton_model_decisions_total", "Serving decisions taken, by reason.", [*MODEL, "reason"]
)
CANARIES = Counter(
    "lepton_model_canary_results_total", "Canary verdicts on serving pods.", [*MODEL, "result"]
)
BUILD_SECONDS = Histogram(
    "lepton_build_duration_seconds",
    "Wall time of finished build Jobs.",
    ["pool", "phase"],
    buckets=(30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)

PHASES = ("Pending", "Building", "Deploying", "Ready", "Degraded", "Failed")
DECISION_REASONS = ("Decision", "RolledBack")
CANARY_REASONS = {"CanaryPassed": "passed", "NoReference": "skipped", "CanaryMismatch": "failed"}


class EventLike(Protocol):
    @property
    def reason(self) -> str: ...


def observe(
    namespace: str,
    model: str,
    status: dict[str, Any],
    events: Iterable[EventLike],
    previous_builds: list[dict[str, Any]],
) -> None:
    labels = (namespace, model)
    decision = status.get("decision") or {}
    if decision:
        PREDICTED_P95.labels(*labels).set(decision.get("predictedP95Ms") or 0)
        HOURLY_COST.labels(*labels).set(decision.get("hourlyCostUSD") or 0)
    live = status.get("live") or {}
    if live.get("p95Ms") is not None:
        OBSERVED_P95.labels(*labels).set(live["p95Ms"])
    if live.get("requestRate") is not None:
        REQUEST_RATE.labels(*labels).set(live["requestRate"])
    if live.get("hourlyCostUSD") is not None:
        OBSERVED_COST.labels(*labels).set(live["hourlyCostUSD"])
    for pool, count in (live.get("replicasByPool") or {}).items():
        REPLICAS.labels(*labels, pool).set(count)
    for phase in PHASES:
        PHASE.labels(*labels, phase).set(1 if status.get("phase") == phase else 0)
    for event in events:
        if event.reason in DECISION_REASONS:
            DECISIONS.labels(*labels, event.reason).inc()
        if event.reason in CANARY_REASONS:
            CANARIES.labels(*labels, CANARY_REASONS[event.reason]).inc()
    finished_before = {b["job"] for b in previous_builds if b.get("phase") != "Running"}
    for build in status.get("builds") or []:
        seconds = build.get("durationSeconds")
        if seconds is not None and build["job"] not in finished_before:
            BUILD_SECONDS.labels(build["pool"], build["phase"]).observe(seconds)


def serve(port: int) -> None:
    start_http_server(port)
