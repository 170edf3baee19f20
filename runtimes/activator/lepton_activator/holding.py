"""Pure decisions of the hold: admit or refuse, how long to wait, wait statistics.

No clock and no I/O: the server passes the time in, so the bounds are unit-tested.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    """``queue_limit``: requests held per model at once (the next one gets 503);
    ``timeout_s``: the longest a request waits for a Ready replica (then 504);
    ``demand_refresh_s``: while requests wait, how often the demand signal is renewed
    (the operator keeps a replica planned while the signal is fresh)."""

    queue_limit: int = 100
    timeout_s: float = 300.0
    demand_refresh_s: float = 5.0


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def admit(waiting: int, limits: Limits, model: str) -> Refusal | None:
    """None when one more request may wait for ``model``; else the 503 to answer."""
    if waiting < limits.queue_limit:
        return None
    return Refusal(
        503,
        f"queue full: {waiting} request(s) already wait for model {model} to scale from "
        f"zero (limit {limits.queue_limit}); retry later",
    )


def timed_out(model: str, waited_s: float) -> Refusal:
    return Refusal(
        504,
        f"model {model} had no Ready replica within {waited_s:.1f} s; the request was "
        "not sent to it",
    )


def deadline(now_s: float, limits: Limits, asked_timeout_s: float | None = None) -> float:
    """When a request arriving at ``now_s`` stops waiting: the activator's timeout, or
    the client's own (a ``timeout`` query parameter or header), whichever is shorter."""
    timeout = limits.timeout_s
    if asked_timeout_s is not None and asked_timeout_s > 0:
        timeout = min(timeout, asked_timeout_s)
    return now_s + timeout


def demand_due(last_signal_s: float | None, now_s: float, limits: Limits) -> bool:
    """Whether the demand signal should be (re)sent now: at the first held request, and
    every ``demand_refresh_s`` while requests keep waiting."""
    return last_signal_s is None or now_s - last_signal_s >= limits.demand_refresh_s


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile by nearest rank (no interpolation): with 20 waits the p95 is
    the 19th, a wait that happened."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(math.ceil(q * len(ordered)), 1)
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class WaitReport:
    """What the operator is told once the held requests of a model were sent on: the
    figures of ``status.activation`` (how long requests waited on the cold start)."""

    at_s: float
    held: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    timed_out: int
    refused: int

    def as_annotation(self) -> dict[str, float | int]:
        return {
            "at": round(self.at_s, 3),
            "held": self.held,
            "p50Ms": round(self.p50_ms, 1),
            "p95Ms": round(self.p95_ms, 1),
            "maxMs": round(self.max_ms, 1),
            "timedOut": self.timed_out,
            "refused": self.refused,
        }


def wait_report(now_s: float, waits_s: list[float], timed_out: int, refused: int) -> WaitReport:
    return WaitReport(
        at_s=now_s,
        held=len(waits_s),
        p50_ms=quantile(waits_s, 0.5) * 1000,
        p95_ms=quantile(waits_s, 0.95) * 1000,
        max_ms=max(waits_s, default=0.0) * 1000,
        timed_out=timed_out,
        refused=refused,
    )


# Two activator replicas' parts belong to one burst when their holds overlap, give or
# take this much (the Service spreads one burst over both replicas; each empties its
# queue when the same replica turns Ready, a few milliseconds apart).
BURST_SLACK_S = 5.0
# Waits kept per replica's part in the annotation (evenly spaced when a part has more):
# enough for the quantiles, small beside an object's 256 KiB of annotations.
KEPT_WAITS = 500


@dataclass(frozen=True)
class ReplicaBurst:
    """One activator replica's part of a held burst: ``instance`` held requests from
    ``since_s`` until its queue was empty at ``at_s`` (wall clock, Unix seconds)."""

    instance: str
    since_s: float
    at_s: float
    waits_ms: tuple[float, ...]
    timed_out: int = 0
    refused: int = 0
    held: int | None = None  # when ``waits_ms`` is a sample of more (read back)

    @property
    def count(self) -> int:
        return len(self.waits_ms) if self.held is None else self.held

    def as_json(self) -> dict[str, Any]:
        waits = sorted(self.waits_ms)
        if len(waits) > KEPT_WAITS:
            step = (len(waits) - 1) / (KEPT_WAITS - 1)
            waits = [waits[round(i * step)] for i in range(KEPT_WAITS)]
        return {
            "since": round(self.since_s, 3),
            "at": round(self.at_s, 3),
            "held": self.count,
            "waitsMs": [round(w, 1) for w in waits],
            "timedOut": self.timed_out,
            "refused": self.refused,
        }


def replica_bursts(annotation: str | None) -> list[ReplicaBurst]:
    """The replicas' parts in an ``lepton.ai/activator-wait`` value; none when it has
    none or cannot be read (a report of an older activator, a hand-written value)."""
    try:
        parts = json.loads(annotation or "{}").get("parts") or {}
        return [
            ReplicaBurst(
                instance=str(instance),
                since_s=float(part["since"]),
                at_s=float(part["at"]),
                waits_ms=tuple(float(w) for w in part.get("waitsMs") or []),
                timed_out=int(part.get("timedOut") or 0),
                refused=int(part.get("refused") or 0),
                held=int(part["held"]) if "held" in part else None,
            )
            for instance, part in dict(parts).items()
        ]
    except (ValueError, TypeError, KeyError, AttributeError):
        return []


def merge_burst(annotation: str | None, mine: ReplicaBurst) -> dict[str, Any]:
    """The ``lepton.ai/activator-wait`` value once this replica's part is in: the parts
    other replicas reported of the same burst (their holds overlapped this one's) and
    this one; parts of earlier bursts are dropped. The top-level figures (what the
    operator reads into ``status.activation.lastBurst``) are of the whole burst: held,
    timed out and refused summed, quantiles over every replica's waits; ``parts`` keeps
    each replica's own, so the next replica's report merges with them."""
    same_burst = [
        part
        for part in replica_bursts(annotation)
        if part.instance != mine.instance
        and part.since_s <= mine.at_s + BURST_SLACK_S
        and part.at_s >= mine.since_s - BURST_SLACK_S
    ]
    parts = [*same_burst, mine]
    whole = wait_report(
        max(p.at_s for p in parts),
        [w / 1000 for p in parts for w in p.waits_ms],
        sum(p.timed_out for p in parts),
        sum(p.refused for p in parts),
    )
    return {
        **whole.as_annotation(),
        "held": sum(p.count for p in parts),
        "replicas": len(parts),
        "parts": {p.instance: p.as_json() for p in sorted(parts, key=lambda p: p.instance)},
    }


# The gRPC status of each answer the activator gives on its own (grpc.StatusCode names),
# so a gRPC client reads the same cases as an HTTP one: queue full, outwaited, model
# deleted, shutting down, no replica answered.
_GRPC_CODES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def grpc_code(status: int, message: str = "") -> str:
    """The gRPC status code name for an activator answer of HTTP ``status``: a full
    queue (503 ``queue full``) is RESOURCE_EXHAUSTED (retry later), the shutting-down
    503 UNAVAILABLE (retry now, the other replica holds too)."""
    if status == 503 and message.startswith("queue full"):
        return "RESOURCE_EXHAUSTED"
    return _GRPC_CODES.get(status, "UNKNOWN")
