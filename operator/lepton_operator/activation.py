"""Scale from zero: pure decisions about the activator (runtimes/activator).

A model with ``scaling.scaleToZero`` and no Ready replica has its Service pointed at
the activator, which holds requests and says so on the LeptonModel
(``lepton.ai/demand-at``). From that signal the pass plans at least one replica for as
long as the demand is fresh (``hold_until``), however quiet Prometheus is: no Triton
pod has served anything yet, so no figure can show the demand. Once a replica is
Ready the Service goes straight to it again, and the activator leaves the data path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lepton_operator.api.status import ActivationStatus, HeldBurst
from lepton_operator.constants import ANNOTATION_ACTIVATOR_WAIT, ANNOTATION_DEMAND_AT
from lepton_operator.timestamps import format_time

# Demand keeps a replica planned at least this long after the activator last said
# requests wait (it renews the signal every few seconds while they do): long enough to
# cover the Prometheus rate window, after which the served requests show as load.
MIN_HOLD_S = 60.0


@dataclass(frozen=True)
class Demand:
    at_s: float  # the latest request held (Unix seconds)
    until_s: float  # a replica is planned until then

    def holds(self, now_s: float) -> bool:
        return now_s < self.until_s


def demand(annotations: Mapping[str, str], scale_down_window_s: float) -> Demand | None:
    """The activator's demand signal, or None when there is none (or it is unreadable:
    a hand-written value must not fail the pass). It holds for the model's scale-down
    window, at least ``MIN_HOLD_S``: the same idle time that would take a replica
    planned from traffic back to zero."""
    raw = annotations.get(ANNOTATION_DEMAND_AT)
    try:
        at = float(raw) if raw is not None else math.nan
    except ValueError:
        return None
    if not math.isfinite(at):
        return None
    return Demand(at, at + max(scale_down_window_s, MIN_HOLD_S))


def floor_replicas(
    min_replicas: int,
    scale_to_zero: bool,
    waiting: Demand | None,
    now_s: float,
    too_cold: bool = False,
) -> int:
    """The lowest replica count to plan: one while demand waits on a model allowed to
    go to zero, or while its cold start is longer than a request may wait
    (``too_cold``), else the spec's own."""
    if scale_to_zero and (too_cold or (waiting is not None and waiting.holds(now_s))):
        return max(min_replicas, 1)
    return min_replicas


def cold_start_s(provisioning_s: float, load_s: float | None, observed: list[float]) -> float:
    """A replica's cold start as the planner counts it (``planner.lead_seconds``): the
    pool's provisioning delay plus the variant's load time, or the longest observed on
    the cluster when that was longer."""
    return max([provisioning_s + (load_s or 0.0), *observed])


def too_cold(cold_s: float | None, max_cold_start_s: int | None) -> bool:
    """Whether a request at zero would wait longer than ``scaling.maxColdStartSeconds``:
    then the idle replica's cost buys the SLO's tail, and one stays warm."""
    return max_cold_start_s is not None and cold_s is not None and cold_s > max_cold_start_s


def warm_reason(cold_s: float, max_cold_start_s: int) -> str:
    return (
        f"; one warm replica instead of zero: a cold start of about {cold_s:.0f} s is "
        f"longer than scaling.maxColdStartSeconds {max_cold_start_s} s"
    )


def routes_to_activator(scale_to_zero: bool, ready_replicas: int, activators: list[str]) -> bool:
    """Whether the model's Service should point at the activator: only a model that may
    go to zero, only while no replica is Ready, and only when an activator runs (with
    none, an empty Service refuses at once, which beats a Service that hangs)."""
    return scale_to_zero and ready_replicas == 0 and bool(activators)


def held_burst(annotations: Mapping[str, str]) -> HeldBurst | None:
    """The activator's report of its latest held burst, when readable."""
    raw = annotations.get(ANNOTATION_ACTIVATOR_WAIT)
    if not raw:
        return None
    try:
        data: dict[str, Any] = json.loads(raw)
        return HeldBurst(
            time=format_time(float(data["at"])),
            held=int(data["held"]),
            p50_ms=float(data["p50Ms"]),
            p95_ms=float(data["p95Ms"]),
            max_ms=float(data["maxMs"]),
            timed_out=int(data.get("timedOut") or 0),
            refused=int(data.get("refused") or 0),
        )
    except (ValueError, KeyError, TypeError):
        return None


def activation_status(
    routed: bool, waiting: Demand | None, annotations: Mapping[str, str]
) -> ActivationStatus:
    return ActivationStatus(
        routed_to_activator=routed,
        demand_at=format_time(waiting.at_s) if waiting else None,
        hold_until=format_time(waiting.until_s) if waiting else None,
        last_burst=held_burst(annotations),
    )


def demand_reason(waiting: Demand) -> str:
    return (
        f"; requests wait at the activator (latest {format_time(waiting.at_s)}): at least "
        f"one replica until {format_time(waiting.until_s)}"
    )


@dataclass(frozen=True)
class ActivatorRef:
    """Where the activator runs: its Service (the chart's) and the port it takes
    Triton HTTP requests on (gRPC on the next: ``resources.activator.grpc_port``)."""

    namespace: str
    service: str
    port: int = 8000
