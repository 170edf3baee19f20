"""The serving-configuration search's decisions: which configurations to try, how each
scores, and which wins. Pure; ``lepton_builder.servingsearch`` measures on Triton.

A configuration is what Triton's config.pbtxt says about scheduling: model instances,
the largest batch, the batch sizes worth waiting for and how long to wait. The score is
the capacity at the latency target: the most requests per second one server answered
at a load level whose p95 stayed within the target. The search is a bounded coordinate
search from the builder's default (one dimension at a time, keeping what helped), so
its cost grows with the number of alternatives, not their product.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

QUEUE_DELAYS_US = (0, 2_000, 10_000)
NEVER_MS = 1e9  # a level that answered nothing: JSON has no infinity
INSTANCE_COUNTS = (1, 2)


@dataclass(frozen=True)
class ServingConfig:
    instances: int
    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...]  # empty: Triton forms the largest it can
    max_queue_delay_us: int

    def describe(self) -> str:
        preferred = ",".join(map(str, self.preferred_batch_sizes)) or "any"
        return (
            f"{self.instances} instance{'s' if self.instances > 1 else ''}, max batch "
            f"{self.max_batch_size}, preferred {preferred}, queue delay "
            f"{self.max_queue_delay_us} us"
        )

    def as_report(self) -> dict[str, Any]:
        data = asdict(self)
        return {
            "instances": data["instances"],
            "maxBatchSize": data["max_batch_size"],
            "preferredBatchSizes": list(data["preferred_batch_sizes"]),
            "maxQueueDelayUs": data["max_queue_delay_us"],
        }


@dataclass(frozen=True)
class Level:
    """One load level: ``concurrency`` clients, each sending its next request when the
    last one is answered."""

    concurrency: int
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests: int
    failed: int = 0

    def as_report(self) -> dict[str, Any]:
        # Shaped as a builder profile (batchSize: the concurrency), so the operator's
        # capacity model reads it as it reads profiles.
        return {
            "batchSize": self.concurrency,
            "p50Ms": round(min(self.p50_ms, NEVER_MS), 3),
            "p95Ms": round(min(self.p95_ms, NEVER_MS), 3),
            "p99Ms": round(min(self.p99_ms, NEVER_MS), 3),
            "throughputRps": round(self.throughput_rps, 2),
            "requests": self.requests,
            "failed": self.failed,
        }


def capacity_at(levels: list[Level], target_p95_ms: float) -> float:
    """Requests per second at the best level whose p95 met the target; 0 if none did."""
    met = [lv.throughput_rps for lv in levels if lv.p95_ms <= target_p95_ms and not lv.failed]
    return max(met, default=0.0)


def alternatives(config: ServingConfig, dimension: str) -> list[ServingConfig]:
    """The other values of one dimension, the rest of ``config`` kept."""
    if dimension == "instances":
        return [replace(config, instances=n) for n in INSTANCE_COUNTS if n != config.instances]
    if dimension == "queue_delay":
        return [
            replace(config, max_queue_delay_us=d)
            for d in QUEUE_DELAYS_US
            if d != config.max_queue_delay_us
        ]
    if dimension == "preferred":
        other: tuple[int, ...] = () if config.preferred_batch_sizes else (config.max_batch_size,)
        return [replace(config, preferred_batch_sizes=other)]
    raise ValueError(f"unknown dimension {dimension}")


DIMENSIONS = ("instances", "queue_delay", "preferred")


@dataclass
class Trial:
    config: ServingConfig
    levels: list[Level]
    capacity_rps: float

    def as_report(self) -> dict[str, Any]:
        return {
            "config": self.config.as_report(),
            "capacityRps": round(self.capacity_rps, 2),
            "levels": [lv.as_report() for lv in self.levels],
        }


def search(
    default: ServingConfig,
    measure: Callable[[ServingConfig], list[Level]],
    target_p95_ms: float,
    max_trials: int = 6,
    min_gain: float = 0.05,
) -> tuple[Trial, Trial, list[Trial]]:
    """(default trial, best trial, every trial in order).

    A change is kept only when it raises the capacity by more than ``min_gain`` (5%):
    on a shared machine smaller differences are noise, and the default is what the
    builder would serve without a search.
    """
    first = Trial(default, levels := measure(default), capacity_at(levels, target_p95_ms))
    trials, best = [first], first
    for dimension in DIMENSIONS:
        for candidate in alternatives(best.config, dimension):
            if len(trials) >= max_trials:
                return first, best, trials
            levels = measure(candidate)
            trial = Trial(candidate, levels, capacity_at(levels, target_p95_ms))
            trials.append(trial)
            if trial.capacity_rps > best.capacity_rps * (1 + min_gain):
                best = trial
    return first, best, trials
