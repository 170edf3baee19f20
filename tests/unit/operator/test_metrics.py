"""The operator's own metrics: what one reconcile outcome exports, and what it removes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import REGISTRY

from lepton_operator import metrics
from lepton_operator.api.status import BuildStatus, LeptonModelStatus
from lepton_operator.controller import Controller

NS = "team-a"
_names = itertools.count()


@dataclass(frozen=True)
class Ev:
    reason: str


@pytest.fixture
def model() -> str:
    """A model name of its own per test: the metrics live in the process-wide registry."""
    return f"m{next(_names)}"


def value(name: str, model: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"namespace": NS, "model": model, **labels})


def observe(
    model: str,
    status: dict[str, Any],
    events: list[Ev] | None = None,
    previous_builds: list[dict[str, Any]] | None = None,
    spec: dict[str, Any] | None = None,
) -> None:
    builds = [BuildStatus.model_validate(b) for b in previous_builds or []]
    metrics.observe(NS, model, _typed(status), events or [], builds, spec=spec)


def _typed(status: dict[str, Any]) -> LeptonModelStatus:
    """The test's status with what it does not exercise filled in (names, times)."""
    filled = dict(status)
    if "decision" in filled:
        base = {"variant": "v", "pool": "p", "replicas": 1, "reason": "r", "time": "t"}
        filled["decision"] = {**base, "hourlyCostUSD": 0, **filled["decision"]}
    if "live" in filled:
        filled["live"] = {"time": "t", **filled["live"]}
    if "conditions" in filled:
        filled["conditions"] = [{"lastTransitionTime": "t", **c} for c in filled["conditions"]]
    return LeptonModelStatus.model_validate(filled)


def test_slo_and_budget_come_from_the_spec_and_go_with_it(model):
    observe(model, {}, spec={"slo": {"p95LatencyMs": 50}, "budget": {"maxHourlyUSD": 2.5}})
    assert value("lepton_model_slo_p95_ms", model) == 50
    assert value("lepton_model_budget_hourly_usd", model) == 2.5
    observe(model, {}, spec={"slo": {"p95LatencyMs": 80}})
    assert value("lepton_model_slo_p95_ms", model) == 80
    assert value("lepton_model_budget_hourly_usd", model) is None
    observe(model, {}, spec={"slo": "fast", "budget": {"maxHourlyUSD": True}})  # invalid spec
    assert value("lepton_model_slo_p95_ms", model) is None
    assert value("lepton_model_budget_hourly_usd", model) is None


def test_decision_and_live_figures(model):
    status = {
        "decision": {"predictedP95Ms": 12.5, "hourlyCostUSD": 0.68},
        "live": {
            "p95Ms": 14.0,
            "requestRate": 30.0,
            "hourlyCostUSD": 0.68,
            "replicasByPool": {"cpu-standard": 2},
        },
    }
    observe(model, status)
    assert value("lepton_model_predicted_p95_ms", model) == 12.5
    assert value("lepton_model_hourly_cost_usd", model) == 0.68
    assert value("lepton_model_observed_p95_ms", model) == 14.0
    assert value("lepton_model_request_rate", model) == 30.0
    assert value("lepton_model_observed_hourly_cost_usd", model) == 0.68
    assert value("lepton_model_replicas", model, pool="cpu-standard") == 2


def test_unknown_latency_and_traffic_are_removed_not_kept_at_their_last_value(model):
    live = {"p95Ms": 14.0, "requestRate": 30.0, "hourlyCostUSD": 0.68, "replicasByPool": {}}
    observe(model, {"live": live})
    # Prometheus failed: the pass keeps only the time, and Kubernetes' spend.
    observe(model, {"live": {"time": "t", "hourlyCostUSD": 0.68, "replicasByPool": {}}})
    assert value("lepton_model_observed_p95_ms", model) is None
    assert value("lepton_model_request_rate", model) is None
    assert value("lepton_model_observed_hourly_cost_usd", model) == 0.68


def test_a_drained_pool_leaves_the_replicas_gauge(model):
    observe(model, {"live": {"replicasByPool": {"cpu-standard": 2, "gpu-l4": 1}}})
    observe(model, {"live": {"replicasByPool": {"gpu-l4": 2}}})
    assert value("lepton_model_replicas", model, pool="cpu-standard") is None
    assert value("lepton_model_replicas", model, pool="gpu-l4") == 2
    observe(model, {"live": {"time": "t"}})  # a pass that did not count replicas: kept
    assert value("lepton_model_replicas", model, pool="gpu-l4") == 2


def test_one_condition_series_per_type_with_its_status_and_reason(model):
    def condition(status: str, reason: str) -> dict[str, str]:
        return {"type": "MetricsAvailable", "status": status, "reason": reason}

    observe(model, {"conditions": [condition("True", "Observed")]})
    assert value("lepton_model_condition", model, **_labels("True", "Observed")) == 1
    observe(model, {"conditions": [condition("False", "PrometheusUnreachable")]})
    assert value("lepton_model_condition", model, **_labels("True", "Observed")) is None
    assert value("lepton_model_condition", model, **_labels("False", "PrometheusUnreachable")) == 1


def _labels(status: str, reason: str) -> dict[str, str]:
    return {"type": "MetricsAvailable", "status": status, "reason": reason}


def test_phase_is_one_hot(model):
    observe(model, {"phase": "Ready"})
    phases = {p: value("lepton_model_phase", model, phase=p) for p in metrics.PHASES}
    assert phases == {p: (1 if p == "Ready" else 0) for p in metrics.PHASES}


def test_decision_and_canary_counters_start_at_zero_and_count_events(model):
    observe(model, {})
    assert value("lepton_model_decisions_total", model, reason="Decision") == 0
    assert value("lepton_model_canary_results_total", model, result="failed") == 0
    observe(model, {}, [Ev("Decision"), Ev("CanaryMismatch"), Ev("CanaryPassed"), Ev("Ready")])
    assert value("lepton_model_decisions_total", model, reason="Decision") == 1
    assert value("lepton_model_decisions_total", model, reason="RolledBack") == 0
    assert value("lepton_model_canary_results_total", model, result="failed") == 1
    assert value("lepton_model_canary_results_total", model, result="passed") == 1


def test_a_failed_build_is_counted_once(model):
    job = f"{model}-build-cpu"
    running = [{"pool": "cpu", "job": job, "phase": "Running"}]
    failed = [{"pool": "cpu", "job": job, "phase": "Failed", "durationSeconds": 90}]
    before = REGISTRY.get_sample_value(
        "lepton_build_duration_seconds_count", {"pool": "cpu", "phase": "Failed"}
    )
    observe(model, {"builds": running})
    assert value("lepton_model_build_failures_total", model, pool="cpu") == 0
    observe(model, {"builds": failed}, previous_builds=running)
    observe(model, {"builds": failed}, previous_builds=failed)  # the next pass: no recount
    assert value("lepton_model_build_failures_total", model, pool="cpu") == 1
    assert value("lepton_model_last_build_duration_seconds", model, pool="cpu") == 90
    after = REGISTRY.get_sample_value(
        "lepton_build_duration_seconds_count", {"pool": "cpu", "phase": "Failed"}
    )
    assert after == (before or 0) + 1


def test_reconcile_errors_per_model(model):
    metrics.reconciled(NS, model, "timer")
    assert value("lepton_reconcile_errors_total", model, trigger="timer") == 0
    metrics.reconcile_failed(NS, model, "timer")
    assert value("lepton_reconcile_errors_total", model, trigger="timer") == 1


def test_a_deleted_models_series_are_removed_and_no_other(model):
    other = f"{model}-other"
    status = {
        "phase": "Ready",
        "decision": {"predictedP95Ms": 10},
        "live": {"p95Ms": 12.0, "requestRate": 1.0, "replicasByPool": {"cpu": 1}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Available"}],
        "builds": [{"pool": "cpu", "job": "j", "phase": "Succeeded", "durationSeconds": 5}],
    }
    for name in (model, other):
        observe(name, status, [Ev("Decision")], spec={"slo": {"p95LatencyMs": 50}})
        metrics.reconciled(NS, name, "sample")
    controller = Controller(reconciler=None, writer=None, sampler=None)  # type: ignore[arg-type]
    controller.model_event("MODIFIED", {"metadata": {"namespace": NS, "name": other}})
    controller.model_event("DELETED", {"metadata": {"namespace": NS, "name": model}})
    exported = {
        (sample.name, sample.labels.get("model"))
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.labels.get("namespace") == NS
    }
    assert not {name for name, m in exported if m == model}
    assert {name for name, m in exported if m == other} >= {
        "lepton_model_slo_p95_ms",
        "lepton_model_observed_p95_ms",
        "lepton_model_replicas",
        "lepton_model_condition",
        "lepton_model_decisions_total",
        "lepton_reconcile_errors_total",
        "lepton_model_last_build_duration_seconds",
    }
    observe(model, {"live": {"replicasByPool": {"gpu": 1}}})  # the name used again later
    assert value("lepton_model_replicas", model, pool="cpu") is None
