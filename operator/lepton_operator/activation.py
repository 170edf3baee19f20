"""Scale from zero: pure decisions about the activator (runtimes/activator).

A model with ``scaling.scaleToZero`` and no Ready replica has its Service pointed at
the activator, which holds requests and says so on the LeptonModel
(``lepton.ai/demand-at``). From that signal the pass plans at least one replica for as
long as the demand is fresh (``hold_until``), however quiet Prometheus is: no Triton
pod has served anything yet, so no figure can show the demand. Once a replica is
Ready the Service goes straight to it again, and the activator leaves the data path.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
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


# Wakes in the remembered hour before their gaps may keep a replica warm.
MIN_WAKES = 2


@dataclass(frozen=True)
class ZeroWeighed:
    """Going to zero replayed over the remembered load: how often a request would have
    woken the model, the share of requests that would have waited on its cold start,
    and the replica-seconds zero would have saved net of the cold starts themselves (a
    starting replica is paid for from its start)."""

    wakes: int
    cold_share: float
    saved_s: float

    @property
    def costs_more(self) -> bool:
        """Whether zero would have cost more than one warm replica: the idle gaps, taken
        together, too short to repay the cold starts that end them (ski rental's rule),
        and more than one of them (one wake is an event, not yet a pattern)."""
        return self.wakes >= MIN_WAKES and self.saved_s <= 0


def weigh_zero(
    rates: Sequence[Sequence[float]], idle_window_s: float, cold_s: float
) -> ZeroWeighed:
    """Zero weighed against one warm replica over ``rates`` ([unix seconds, req/s],
    each the rate over the interval before its time): a replica leaves after
    ``idle_window_s`` without requests, and the requests of the first ``cold_s`` after
    a quiet longer than that wait for the next one to start."""
    samples = sorted((float(t), max(float(r), 0.0)) for t, r in rates)
    if len(samples) < 2:
        return ZeroWeighed(0, 0.0, 0.0)
    gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(samples))
    interval = gaps[len(gaps) // 2]  # the sampling interval; a missing sample is quiet
    before = [samples[0][0] - interval, *(t for t, _ in samples[:-1])]
    spans = [(t - min(t - b, interval), t, r) for b, (t, r) in zip(before, samples, strict=True)]
    total = sum((end - start) * r for start, end, r in spans)
    wakes, cold, saved = 0, 0.0, 0.0
    quiet_since = spans[0][0]
    for start, end, rate in spans:
        if rate <= 0:
            continue
        quiet = start - quiet_since
        if quiet > idle_window_s:
            wakes += 1
            saved += quiet - idle_window_s - cold_s
            cold += _requests_within(spans, start, start + cold_s)
        quiet_since = end
    return ZeroWeighed(wakes, cold / total if total > 0 else 0.0, saved)


def _requests_within(
    spans: Sequence[tuple[float, float, float]], begin: float, end: float
) -> float:
    """Requests in [begin, end) at the spans' rates."""
    return sum(
        max(0.0, min(e, end) - max(s, begin)) * r for s, e, r in spans if s < end and e > begin
    )


def zero_reason(weighed: ZeroWeighed, cold_s: float) -> str:
    return (
        f"; one warm replica instead of zero: over the remembered load, {weighed.wakes} "
        f"idle gaps were together too short to repay a cold start of about "
        f"{cold_s:.0f} s each"
    )


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
    routed: bool,
    waiting: Demand | None,
    annotations: Mapping[str, str],
    weighed: ZeroWeighed | None = None,
) -> ActivationStatus:
    return ActivationStatus(
        routed_to_activator=routed,
        demand_at=format_time(waiting.at_s) if waiting else None,
        hold_until=format_time(waiting.until_s) if waiting else None,
        last_burst=held_burst(annotations),
        wakes=weighed.wakes if weighed else None,
        cold_share=round(weighed.cold_share, 4) if weighed else None,
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
