"""Daily seasonality: the load a model saw at this time of day on the days before.

The trend sees a rise only once it has begun, one cold start too late for a step (a
batch job at 09:00, a team that starts work at once); a pattern that recurs every day
can be met ahead of time. The load is kept per time-of-day slot (5 minutes, UTC): the
slot's typical rate (the median of its samples, so neither noise nor a burst of a
minute or two sets it) on each of the last ``DAYS_KEPT`` days it was observed. The
forecast for a slot is the *lowest* of those, and only once ``DAYS_KEPT`` days are
known: a level that was there on every recent day, so a one-off burst never buys
capacity for the next day. It only ever adds capacity ahead of time; it never holds
less than the load seen now.

Pure: plain data in and out. The operator keeps it in ``status.planner.daily``, the
replay benchmark in its own memory; both call ``observe`` and ``expected_load``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

SLOT_S = 300.0
DAY_S = 86_400.0
SLOTS_PER_DAY = int(DAY_S // SLOT_S)
DAYS_KEPT = 2  # days a slot must have been seen before it forecasts anything
OPEN_SAMPLES = 60  # samples kept of the slot observed now (the operator samples ~every 15 s)


@dataclass(frozen=True)
class DailyLoad:
    """``slots``: time-of-day slot -> the slot's median req/s on the last days it was
    seen, newest first (at most ``DAYS_KEPT``). ``open_slot``/``open_samples``: the
    slot being observed now (an absolute index, Unix seconds // ``SLOT_S``) and its
    samples so far, folded into ``slots`` when a later slot begins."""

    slots: dict[int, tuple[float, ...]] = field(default_factory=dict)
    open_slot: int | None = None
    open_samples: tuple[float, ...] = ()


def observe(daily: DailyLoad, now_s: float, rate_rps: float) -> DailyLoad:
    """The profile with one more rate sample. A slot with no sample (the operator was
    down, Prometheus did not answer) is simply not recorded that day."""
    slot = int(now_s // SLOT_S)
    if daily.open_slot == slot:
        samples = (*daily.open_samples, rate_rps)[-OPEN_SAMPLES:]
        return DailyLoad(daily.slots, slot, samples)
    slots = dict(daily.slots)
    if daily.open_slot is not None and daily.open_slot < slot and daily.open_samples:
        of_day = daily.open_slot % SLOTS_PER_DAY
        typical = round(statistics.median(daily.open_samples), 3)
        slots[of_day] = (typical, *slots.get(of_day, ()))[:DAYS_KEPT]
    return DailyLoad(slots, slot, (rate_rps,))


def expected_load(daily: DailyLoad | None, now_s: float, horizon_s: float) -> float:
    """The typical load every one of the last ``DAYS_KEPT`` days had in a slot that
    overlaps ``[now, now + horizon]`` (0 when no such slot is known well enough)."""
    if daily is None:
        return 0.0
    first = int(now_s // SLOT_S)
    last = math.floor((now_s + max(horizon_s, 0.0)) / SLOT_S)
    expected = 0.0
    for slot in range(first, last + 1):
        levels = daily.slots.get(slot % SLOTS_PER_DAY, ())
        if len(levels) >= DAYS_KEPT:
            expected = max(expected, min(levels))
    return expected


def next_change_s(daily: DailyLoad | None, now_s: float, horizon_s: float) -> float | None:
    """The first time within a day at which ``expected_load`` over the same horizon
    differs from now's: a forecast slot entering the horizon (one cold start before it
    begins) or the one forecast now ending. None when no slot forecasts anything. The
    operator wakes an idle model then, so a recurring rise is met with no traffic yet."""
    if daily is None or not any(len(levels) >= DAYS_KEPT for levels in daily.slots.values()):
        return None
    horizon = max(horizon_s, 0.0)
    now_expected = expected_load(daily, now_s, horizon)
    first = int(now_s // SLOT_S)
    # The forecast only changes where a slot boundary meets either end of the horizon;
    # a millisecond past it, so rounding cannot land the boundary in the slot before.
    moments = sorted(
        {
            edge + 0.001
            for slot in range(first + 1, first + SLOTS_PER_DAY + 2)
            for edge in (slot * SLOT_S, slot * SLOT_S - horizon)
            if edge + 0.001 > now_s
        }
    )
    return next((t for t in moments if expected_load(daily, t, horizon) != now_expected), None)


def to_status(daily: DailyLoad) -> dict[str, object]:
    """``status.planner.daily``: ``slots`` as ``[slot, median, median...]`` rows."""
    return {
        "slots": [[slot, *levels] for slot, levels in sorted(daily.slots.items())],
        "open": [] if daily.open_slot is None else [daily.open_slot, *daily.open_samples],
    }


def from_status(raw: object) -> DailyLoad:
    """The profile from ``status.planner.daily``; anything malformed is forgotten (the
    forecast starts again) rather than failing a reconcile."""
    if not isinstance(raw, dict):
        return DailyLoad()
    try:
        slots = {
            int(row[0]) % SLOTS_PER_DAY: tuple(float(p) for p in row[1 : 1 + DAYS_KEPT])
            for row in raw.get("slots") or []
            if len(row) >= 2
        }
        opened = raw.get("open") or []
        if len(opened) >= 2:
            samples = tuple(float(r) for r in opened[1 : 1 + OPEN_SAMPLES])
            return DailyLoad(slots, int(opened[0]), samples)
        return DailyLoad(slots)
    except (TypeError, ValueError, IndexError):
        return DailyLoad()
