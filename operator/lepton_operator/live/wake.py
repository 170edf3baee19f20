"""Which models a new fleet sample should wake: pure, so the sampler and tests share it.

The sampler reads every model's figures with one fixed set of grouped queries per
interval; a model gets a pass only when its figures moved enough to matter for a
decision, or when its own plan waits on the next figures (a stabilization window
running). Two bounds keep status honest without costing an idle fleet anything: a
model with traffic shows figures at most ``LIVE_MAX_AGE_S`` old, and while Prometheus
fails each model that had traffic says so again every ``FAILURE_REPEAT_S`` (its
serving holds on old figures: status must show it is still blind). A model without
traffic whose figures hold still (no series: ``NoData``) gets no pass at all, and
hears of a failure once.
"""

from __future__ import annotations

from dataclasses import dataclass

from lepton_operator.live.sample import LiveSample

# A change smaller than this share of the last figure a model planned with is noise:
# replicas are sized with headroom, and the planner's windows smooth the rest.
RELATIVE_MOVE = 0.10
# Below this absolute change in req/s a relative move is noise too (0.05 -> 0.06).
RATE_FLOOR_RPS = 0.2
# The oldest ``status.live`` of a model with traffic: its figures are refreshed then
# even when they hold still.
LIVE_MAX_AGE_S = 60.0
# While Prometheus cannot be read, how often each model records that it still cannot.
FAILURE_REPEAT_S = 30.0


@dataclass(frozen=True)
class Seen:
    """What a model was last woken with: a sample, or the reason there was none
    (``NoData``, ``PrometheusUnreachable``, ``QueryFailed``)."""

    sample: LiveSample | None
    reason: str = ""
    at: float = 0.0  # when the sampler read it (Unix seconds)
    busy: bool = False  # on a failure: the model had traffic in the last figures read


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


def stale(before: Seen | None, after: Seen) -> bool:
    """Whether the figures the model was last woken with are too old to stand: a
    model with traffic after ``LIVE_MAX_AGE_S``, a failure after ``FAILURE_REPEAT_S``;
    a model without traffic never."""
    if before is None:
        return True
    age = after.at - before.at
    if after.reason and after.reason != "NoData":
        return after.busy and age >= FAILURE_REPEAT_S
    if after.sample is not None and after.sample.request_rate_rps > 0:
        return age >= LIVE_MAX_AGE_S
    return False


def to_wake(
    known: set[tuple[str, str]],
    last: dict[tuple[str, str], Seen],
    now: dict[tuple[str, str], Seen],
    waiting: set[tuple[str, str]],
) -> set[tuple[str, str]]:
    """The models to wake: those whose figures ``moved`` since they were last woken or
    went ``stale``, and those ``waiting`` for the next figures whatever they say."""
    return {
        key
        for key in known
        if key in waiting or moved(last.get(key), now[key]) or stale(last.get(key), now[key])
    }
