"""The scale benchmark's breakdown of the operator's passes, from real metrics text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from lepton_e2e.pass_breakdown import breakdown, quantile, snapshot


def test_quantile_interpolates_within_a_bucket_like_histogram_quantile() -> None:
    buckets = {0.1: 10.0, 1.0: 20.0, float("inf"): 20.0}
    assert quantile(buckets, 0.5) == 0.1
    assert quantile(buckets, 0.75) == 0.55
    assert quantile({0.1: 0.0, float("inf"): 4.0}, 0.99) == 0.1  # past the last bound
    assert quantile({0.1: 0.0, float("inf"): 0.0}, 0.5) is None


def test_the_breakdown_is_the_difference_between_two_reads() -> None:
    registry = CollectorRegistry()
    passes = Histogram("lepton_reconcile_duration_seconds", "", ["trigger"], registry=registry)
    wait = Histogram(
        "lepton_workqueue_wait_seconds", "", ["lane"], buckets=(0.1, 1.0), registry=registry
    )
    step = Histogram(
        "lepton_pass_step_seconds", "", ["step"], buckets=(0.1, 1.0), registry=registry
    )
    Counter("lepton_unrelated", "", registry=registry).inc()
    for _ in range(5):
        passes.labels(trigger="create").observe(0.2)
        wait.labels(lane="normal").observe(5.0)  # before: must not count
    before = snapshot(generate_latest(registry).decode())
    for _ in range(3):
        passes.labels(trigger="owned").observe(0.2)
        wait.labels(lane="ahead").observe(0.05)
        step.labels(step="build").observe(0.5)
        step.labels(step="write").observe(0.5)
    after = snapshot(generate_latest(registry).decode())
    found = breakdown(before, after)
    assert found["passesByTrigger"] == {"owned": 3.0}
    assert found["queueWaitP99S"] == {"ahead": 0.099, "normal": None}
    assert found["stepP50S"] == {"build": 0.55, "write": 0.55}
    assert found["stepShare"] == {"build": 0.5, "write": 0.5}
