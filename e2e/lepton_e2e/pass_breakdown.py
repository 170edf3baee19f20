"""Where the operator's passes spent their time between two reads of its ``/metrics``:
passes by trigger, the work queue's wait per lane and each step of a pass (the
``lepton_workqueue_wait_seconds`` and ``lepton_pass_step_seconds`` histograms), as
quantiles of the difference (Prometheus's ``histogram_quantile``, linear within a
bucket). Parsed with ``prometheus_client``'s own text parser."""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

# label value -> upper bound -> cumulative count
Buckets = dict[str, dict[float, float]]


@dataclass(frozen=True)
class Snapshot:
    passes: dict[str, float]  # trigger -> passes
    wait: Buckets  # lane -> buckets
    steps: Buckets  # step -> buckets
    step_seconds: dict[str, float]  # step -> total seconds


def snapshot(text: str) -> Snapshot:
    passes: dict[str, float] = {}
    wait: Buckets = {}
    steps: Buckets = {}
    step_seconds: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "lepton_reconcile_duration_seconds_count":
                passes[sample.labels["trigger"]] = sample.value
            elif sample.name == "lepton_workqueue_wait_seconds_bucket":
                wait.setdefault(sample.labels["lane"], {})[float(sample.labels["le"])] = (
                    sample.value
                )
            elif sample.name == "lepton_pass_step_seconds_bucket":
                steps.setdefault(sample.labels["step"], {})[float(sample.labels["le"])] = (
                    sample.value
                )
            elif sample.name == "lepton_pass_step_seconds_sum":
                step_seconds[sample.labels["step"]] = sample.value
    return Snapshot(passes, wait, steps, step_seconds)


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """``histogram_quantile(q, ...)`` over cumulative buckets; None when empty. The
    highest finite bound when the quantile falls in the +Inf bucket."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def _minus(after: Buckets, before: Buckets) -> Buckets:
    return {
        label: {le: n - before.get(label, {}).get(le, 0.0) for le, n in counts.items()}
        for label, counts in after.items()
    }


def breakdown(before: Snapshot, after: Snapshot) -> dict[str, dict[str, float | None]]:
    """What happened between the two snapshots: passes per trigger; p50 and p99 of the
    queue wait per lane and of each step; each step's share of the passes' time."""
    steps = _minus(after.steps, before.steps)
    spent = {
        step: seconds - before.step_seconds.get(step, 0.0)
        for step, seconds in after.step_seconds.items()
    }
    total = sum(spent.values())
    return {
        "passesByTrigger": {
            trigger: n - before.passes.get(trigger, 0.0)
            for trigger, n in sorted(after.passes.items())
            if n - before.passes.get(trigger, 0.0) > 0
        },
        **{
            f"queueWait{name}S": {
                lane: _round(quantile(counts, q))
                for lane, counts in sorted(_minus(after.wait, before.wait).items())
            }
            for name, q in (("P50", 0.5), ("P99", 0.99))
        },
        **{
            f"step{name}S": {step: _round(quantile(counts, q)) for step, counts in steps.items()}
            for name, q in (("P50", 0.5), ("P99", 0.99))
        },
        "stepShare": {
            step: round(seconds / total, 3) if total else None for step, seconds in spent.items()
        },
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
