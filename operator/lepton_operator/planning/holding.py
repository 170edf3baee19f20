"""Scale-down and pool cross-over by expected cost: keep capacity, or drop it and risk
the load coming back before it can be provisioned again.

Dropping replicas saves their price. It costs nothing if the load stays down; if the
load rises past what the smaller fleet serves, the SLO is missed until the capacity is
back (the time to see the rise plus a cold start), and the capacity is paid again while
it provisions. Which of the two is likelier is read from the load itself: over the
recent memory (``recent_rates``), every rise past what the smaller fleet serves within
the SLO that, by its ratio, would go past it again from the load now; how often such
rises came and how long each stayed up (at most the time to bring the capacity back).

Priced so: a second over the SLO weighs ``MISS_WEIGHT`` seconds of the fleet held,
``1 / (1 - 0.99)``: the SLO target allows one minute in a hundred over, so a minute over
is worth as much as a hundred minutes of the capacity that avoids it. The planner holds
replicas while the expected cost of dropping them (misses plus provisioning again)
exceeds their price, and no longer.

A rise seen once is a step, not a pattern: only a rise that recurred within the memory
(``RECURRENCE_MIN`` of them) says the load comes back. A tenfold burst several times an
hour does; a step up and down once does not, and scaling down after it is free.

Pure and deterministic: plain numbers in, plain numbers out.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from lepton_operator.planning.capacity import P95_TAIL, Capacity

SLO_SHARE_TARGET = 0.99
MISS_WEIGHT = 1.0 / (1.0 - SLO_SHARE_TARGET)  # a second over the SLO, in seconds of the fleet
RECURRENCE_MIN = 2  # rises within the memory before they count as a pattern
# A rise to at least this multiple of where it started is a burst, which may come back
# on top of any load; a smaller one is the noise of its level, which scales with it.
BURST_RATIO = 2.0


@dataclass(frozen=True)
class Risk:
    """What dropping to a fleet serving ``served_rps`` risks, read from the memory."""

    rises: int  # rises past it (scaled to the load now) within the memory
    miss_share: float  # expected share of time over the SLO: their duration over the span
    rises_per_hour: float

    @property
    def recurs(self) -> bool:
        return self.rises >= RECURRENCE_MIN


NO_RISK = Risk(0, 0.0, 0.0)


def served_rps(capacity: Capacity, replicas: int, slo_ms: float, correction: float = 1.0) -> float:
    """The highest load ``replicas`` serve within the SLO under the capacity model: its
    p95 ``(base + K rho / (1 - rho)) x correction`` equals the SLO at ``rho = r / (1 + r)``,
    ``r = (SLO / correction - base) / K`` (``K`` the queueing tail of one service time)."""
    if replicas <= 0 or capacity.max_rps <= 0 or correction <= 0:
        return 0.0
    headroom = slo_ms / correction - capacity.base_p95_ms
    if headroom <= 0:
        return 0.0
    r = headroom / (P95_TAIL * 1000.0 / capacity.max_rps)
    return replicas * capacity.max_rps * r / (1.0 + r)


def sample_spacing_s(samples: list[tuple[float, float]]) -> float:
    """The median time between samples (a minute in the replay, the sampler's interval
    live): how late a rise is seen, and how long a one-sample rise lasts."""
    gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(samples))
    gaps = [g for g in gaps if g > 0]
    return gaps[len(gaps) // 2] if gaps else 0.0


def miss_risk(
    recent_rates: tuple[tuple[float, float], ...],
    now_s: float,
    rate_rps: float,
    served: float,
    lead_s: float,
    window_s: float,
    spacing_s: float | None = None,
) -> Risk:
    """The rises of the last ``window_s`` past ``served`` that would also take the load
    now past it. ``spacing_s``: the time between samples as the load is sampled now
    (how late a rise is seen), when ``recent_rates`` mixes resolutions (per-minute peaks
    of the older hours before the samples of the last); else their own median spacing.

    A rise starts at a sample at or below ``served`` and is a later sample within the
    time to bring capacity back (``lead_s`` plus one sample's delay to see it) that is
    above it, by a rise that, applied to ``rate_rps``, is above it too (from no load,
    its level alone). A rise is read as a ratio to its start (a level's own noise, in
    proportion to the level) and, when it at least doubled the load (``BURST_RATIO``),
    also as load added to whatever the load is (a burst on top of an idle floor: 2.5
    to 5,900 req/s read as x2,360 of a floor now at 1 req/s would say 2,360 and hide a
    burst that comes back as it was); it counts if either reading goes past. Noise
    read as added load would carry a busy level's wiggles down a day's decline. It
    lasts while the samples stay above, at most that time: a burst longer than a cold
    start is met once the capacity is back. Both tests,
    so the load seen must have gone past what the smaller fleet serves (a step long
    since climbed is not a rise at its new level) and must do so again from where the
    load is now (the noise of a level the load has since left behind, such as a decline
    that passed through, is not a risk any more)."""
    samples = sorted((t, r) for t, r in recent_rates if now_s - t <= window_s)
    if len(samples) < 3:
        return NO_RISK
    if rate_rps >= served:
        # The smaller fleet cannot serve the load now: dropping is a miss from the start.
        return Risk(RECURRENCE_MIN, 1.0, 0.0)
    spacing = sample_spacing_s(samples) if spacing_s is None else spacing_s
    horizon = lead_s + spacing

    def rises(level: float, value: float) -> bool:
        if value <= served:
            return False
        if level <= 0 or rate_rps <= 0:
            return True
        scaled = value / level * rate_rps  # a level's noise, in proportion
        if value < BURST_RATIO * level:
            return scaled > served
        added = rate_rps + (value - level)  # a burst on top of whatever the load is
        return max(scaled, added) > served

    durations: list[float] = []
    i = 0
    while i < len(samples) - 1:
        start_t, level = samples[i]
        first = None
        if level <= served:
            for j in range(i + 1, len(samples)):
                if samples[j][0] - start_t > horizon:
                    break
                if rises(level, samples[j][1]):
                    first = j
                    break
        if first is None:
            i += 1
            continue
        end = first
        while end + 1 < len(samples) and samples[end + 1][1] > served:
            end += 1
        durations.append(min(samples[end][0] - samples[first][0] + spacing, horizon))
        i = end + 1
    span = max(now_s - samples[0][0], spacing, 1.0)
    if not durations:
        return NO_RISK
    return Risk(len(durations), sum(durations) / span, len(durations) * 3600.0 / span)


def expected_hourly_cost(
    price_usd: float,
    held_price_usd: float,
    risk: Risk,
    lead_s: float,
) -> float:
    """$/h of serving at ``price_usd`` against holding ``held_price_usd``: the price,
    plus, when the rises recur, the misses they bring (``MISS_WEIGHT`` x the held
    fleet's price for each second over the SLO) and the dropped capacity paid again
    over a cold start at each rise."""
    if not risk.recurs:
        return price_usd
    misses = risk.miss_share * MISS_WEIGHT * held_price_usd
    again = risk.rises_per_hour * max(held_price_usd - price_usd, 0.0) * lead_s / 3600.0
    return price_usd + misses + again
