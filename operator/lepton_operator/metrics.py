"""The operator's own Prometheus metrics (``prometheus_client``), served on one port.

Per LeptonModel: predicted p95, planned spend, replicas per pool, decisions by reason;
per reconcile: duration and errors. Observed latency and spend join in with the
metrics adapter (live serving).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILE_SECONDS = Histogram(
    "lepton_reconcile_duration_seconds", "Time of one reconcile pass.", ["trigger"]
)
RECONCILE_ERRORS = Counter(
    "lepton_reconcile_errors_total", "Reconcile passes that raised.", ["trigger"]
)
PREDICTED_P95 = Gauge(
    "lepton_model_predicted_p95_ms", "Planner's predicted p95 latency.", ["namespace", "model"]
)
HOURLY_COST = Gauge(
    "lepton_model_hourly_cost_usd", "Planned spend per hour.", ["namespace", "model"]
)
REPLICAS = Gauge(
    "lepton_model_replicas", "Ready serving replicas per pool.", ["namespace", "model", "pool"]
)
PHASE = Gauge(
    "lepton_model_phase", "1 for the model's current phase.", ["namespace", "model", "phase"]
)

PHASES = ("Pending", "Building", "Deploying", "Ready", "Degraded", "Failed")


def observe_status(namespace: str, model: str, status: dict[str, Any]) -> None:
    decision = status.get("decision") or {}
    if decision:
        PREDICTED_P95.labels(namespace, model).set(decision.get("predictedP95Ms") or 0)
        HOURLY_COST.labels(namespace, model).set(decision.get("hourlyCostUSD") or 0)
        REPLICAS.labels(namespace, model, decision["pool"]).set(status.get("replicas") or 0)
    for phase in PHASES:
        PHASE.labels(namespace, model, phase).set(1 if status.get("phase") == phase else 0)


def serve(port: int) -> None:
    start_http_server(port)
