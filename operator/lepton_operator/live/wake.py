"""Which models a new fleet sample should wake: pure, so the sampler and tests share it.

The sampler reads every model's figures with one fixed set of grouped queries per
interval. A model with traffic gets a pass on every sample: the planner learns from
each one (the correction of its latency model, the trend, the burst memory, the daily
pattern), and the replay benchmark proves its decisions at that cadence. A model
without traffic gets a pass only when its figures moved (traffic arriving, figures
appearing or going, Prometheus failing or coming back) or when its plan waits on the
next figures (a stabilization window running, the load having just stopped). While
Prometheus fails, a model it had figures for says so again every ``FAILURE_REPEAT_S``
(it serves on old figures: status must show it is still blind); one without series
hears of the failure once. An idle, settled fleet costs no pass at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from lepton_operator.live.sample import LiveSample

# A change smaller than this share of the last figure a model planned with is noise:
# replicas are sized with headroom, and the planner's windows smooth the rest.
RELATIVE_MOVE = 0.10
# Below this absolute change in req/s a relative move is noise too (0.05 -> 0.06).
RATE_FLOOR_RPS = 0.2
# While Prometheus cannot be read, how often each model records that it still cannot.
FAILURE_REPEAT_S = 30.0


@dataclass(frozen=True)
class Seen:
    """What a model was last woken with: a sample, or the reason there was none
    (``NoData``, ``PrometheusUnreachable``, ``QueryFailed``)."""

    sample: LiveSample | None
    reason: str = ""
    at: float = 0.0  # when the sampler read it (Unix seconds)
    busy: bool = False  # on a failure: the last figures read had series for the model


def _moved(before: float | None, after: float | None, floor: float = 0.0) -> bool:
    if (before is None) != (after is None):
        return True
    if before is None or after is None:
        return False
    change = abs(after - before)
    return change > floor and change > RELATIVE_MOVE * max(abs(before), abs(after))


def moved(before: Seen | None, after: Seen) -> bool:
    """Whether ``after`` differs from ``before`` enough for the model's plan to care:
    first figures, figures appearing or going, Prometheus failing or coming back, a
    request rate, p95 or failure rate moved by more than ``RELATIVE_MOVE``."""
    if before is None or before.reason != after.reason:
        return True
    old, new = before.sample, after.sample
    if old is None or new is None:
        return (old is None) != (new is None)
    return (
        _moved(old.model_rps, new.model_rps, RATE_FLOOR_RPS)
        or _moved(old.p95_ms, new.p95_ms)
        or _moved(old.failure_rate_rps or 0.0, new.failure_rate_rps or 0.0, RATE_FLOOR_RPS)
    )


def busy(seen: Seen) -> bool:
    """Traffic in these figures: the planner wants every sample of it."""
    return seen.sample is not None and seen.sample.request_rate_rps > 0


def stale(before: Seen | None, after: Seen) -> bool:
    """Whether a failure the model was told of is old enough to tell again (a model
    that had traffic, after ``FAILURE_REPEAT_S``)."""
    if before is None:
        return True
    if after.reason and after.reason != "NoData":
        return after.busy and after.at - before.at >= FAILURE_REPEAT_S
    return False


def to_wake(
    known: set[tuple[str, str]],
    last: dict[tuple[str, str], Seen],
    now: dict[tuple[str, str], Seen],
    waiting: set[tuple[str, str]],
) -> set[tuple[str, str]]:
    """The models to wake: those with traffic, those whose figures ``moved`` since they
    were last woken or whose failure went ``stale``, and those ``waiting`` for the next
    figures whatever they say."""
    return {
        key
        for key in known
        if key in waiting
        or busy(now[key])
        or moved(last.get(key), now[key])
        or stale(last.get(key), now[key])
    }
