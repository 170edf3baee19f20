"""The capacity model against real Triton (issue 25): what the operator's own model
predicts for a load on the Ready replicas, beside what Triton served.

The replay benchmark scores every policy with the capacity model itself, so its error
can only be measured on a cluster: the serving e2e test checks one load, the demo every
steady step of its ramp. The model is the one the planner starts from
(``capacity_from_profiles`` over the build report the operator published), uncorrected:
the correction the planner learns exists because this error is not small.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lepton_e2e.fixtures import Kube
from lepton_operator.planning.capacity import Capacity, capacity_from_profiles
from lepton_operator.report import parse_report

# A sample is steady when the rate Prometheus saw is this close to the rate offered.
STEADY_TOLERANCE = 0.05


def served_capacity(kube: Kube, namespace: str, model: str, status: dict[str, Any]) -> Capacity:
    """The capacity model of the variant and pool the operator decided on, from the
    build report ConfigMap of the build it serves."""
    decision = status["decision"]
    reports = [
        parse_report(cm["data"]["report.json"])
        for cm in kube.list(
            "configmap", namespace, f"lepton.ai/model={model},lepton.ai/component=build-report"
        )
        if cm["metadata"]["labels"].get("lepton.ai/build-hash") == status["buildHash"]
        and (cm.get("data") or {}).get("report.json")
    ]
    (report,) = [r for r in reports if r.pool == decision["pool"]]
    (variant,) = [v for v in report.variants if v.name == decision["variant"]]
    slo = kube.get("lm", model, namespace)["spec"]["slo"]["p95LatencyMs"]
    capacity = capacity_from_profiles(
        variant.name, decision["pool"], variant.capacity_profiles, float(slo)
    )
    if capacity is None:
        raise ValueError(f"{variant.name} on {decision['pool']} has no profiles")
    return capacity


@dataclass(frozen=True)
class Check:
    """One load: the model's p95 for it and the p95 Triton's clients measured."""

    rate_rps: float
    replicas: int
    predicted_ms: float
    served_ms: float

    @property
    def error(self) -> float:
        """(predicted - served) / served: positive where the model is pessimistic."""
        return (self.predicted_ms - self.served_ms) / self.served_ms

    def line(self, capacity: Capacity) -> str:
        return (
            f"{capacity.variant} on {capacity.pool} x{self.replicas} at {self.rate_rps:g} "
            f"req/s: predicted p95 {self.predicted_ms:.1f} ms (uncorrected), Triton served "
            f"{self.served_ms:.1f} ms to the clients: error {self.error:+.0%}"
        )


@dataclass(frozen=True)
class Sample:
    """What the demo saw at one instant: the rate offered and seen, the Ready replicas
    and the clients' p95 over the interval."""

    offered_rps: float
    seen_rps: float | None
    replicas: int
    client_p95_ms: float | None


def steady_checks(samples: Iterable[Sample], capacity: Capacity) -> list[Check]:
    """One check per (offered rate, Ready replicas) held steady: samples whose seen rate
    is within ``STEADY_TOLERANCE`` of the offered one and whose replicas were already
    Ready at the sample before (a replica starting, or the rate window still filling,
    is no steady load); the served p95 is the median of the clients' p95 there."""
    steady: dict[tuple[float, int], list[float]] = {}
    before: Sample | None = None
    for sample in samples:
        held = before is not None and before.replicas == sample.replicas
        seen = sample.seen_rps or 0.0
        if (
            held
            and sample.offered_rps > 0
            and sample.replicas > 0
            and sample.client_p95_ms is not None
            and abs(seen - sample.offered_rps) <= STEADY_TOLERANCE * sample.offered_rps
        ):
            steady.setdefault((sample.offered_rps, sample.replicas), []).append(
                sample.client_p95_ms
            )
        before = sample
    return [
        Check(rate, replicas, capacity.p95_ms(rate, replicas), statistics.median(p95s))
        for (rate, replicas), p95s in steady.items()
    ]
