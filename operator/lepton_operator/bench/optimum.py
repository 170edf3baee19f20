"""The replay's yardstick: the cheapest schedule over the whole trace, with hindsight.

Why a dynamic programme and not the cheapest setup minute by minute: replicas take a
cold start to serve and are paid from the minute they are asked for, so holding an idle
replica through a short lull can be cheaper than releasing it and paying its cold start
again; a minute-by-minute choice cannot see that, and an always-on GPU beat it on a
bursty trace. This one is exact for the world ``replay.simulate`` scores, under these
rules (the same every policy lives by):

- a fleet is, per pool, one variant and a replica count in ``[0, maxReplicas]``, at
  least ``min_replicas`` replicas in all; several pools may serve at once, the load
  split in proportion to capacity, as ``replay.p95_of`` scores it;
- every minute the Ready fleet meets the SLO at that minute's load (where no fleet can,
  the fleets with the lowest p95 are allowed, and the minute counts as over the SLO);
- a fleet costs its replicas' hourly prices for each minute it is held, and every
  replica added to a pool (or every replica of a pool's new variant) was paid for its
  cold start, ``Scenario.lead_minutes``, before it served; removing is free and at once;
- the first minute's fleet is Ready at once (every policy starts warm); a replica added
  within the first cold start is charged only the minutes of the trace.

The cost is separable by pool, so the minimum over the previous fleet is taken one
pool axis at a time (a min-plus product per pool, in numpy): states are the product of
each pool's (variant, count) options, about 900 for the shipped pools, and a day's
trace solves in well under a second. ``brute_force`` enumerates every schedule of a
small case, so the tests can check the search against it.

numpy is the project's already (the builder extra, pinned in
``requirements/constraints.txt``); the operator image never imports this module.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from lepton_operator.planning.capacity import P95_TAIL, Capacity


class PoolLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def hourly_price_usd(self) -> float: ...
    @property
    def max_replicas(self) -> int: ...


class Scenario(Protocol):
    """What the optimum reads of ``replay.Scenario`` (named so, without importing it:
    the replay imports this module)."""

    @property
    def rates(self) -> list[float]: ...
    @property
    def capacities(self) -> list[Capacity]: ...
    @property
    def pools(self) -> Sequence[PoolLike]: ...
    @property
    def slo_ms(self) -> float: ...
    @property
    def budget_usd(self) -> float | None: ...
    @property
    def max_replicas(self) -> int: ...
    def lead_minutes(self, pool: str, variant: str | None = None) -> int: ...


MINUTE_H = 1.0 / 60.0


@dataclass(frozen=True)
class PoolOptions:
    """One pool's states: index 0 is empty, then each (variant, count)."""

    name: str
    price_per_minute: float
    variants: tuple[str, ...]  # per state; "" for the empty one
    counts: tuple[int, ...]
    base_p95_ms: tuple[float, ...]
    max_rps: tuple[float, ...]
    lead_minutes: tuple[int, ...]


def pool_options(scenario: Scenario) -> list[PoolOptions]:
    found = []
    for pool in scenario.pools:
        states: list[tuple[str, int, float, float, int]] = [("", 0, 0.0, 0.0, 0)]
        room = min(pool.max_replicas, scenario.max_replicas)
        for capacity in scenario.capacities:
            if capacity.pool != pool.name:
                continue
            lead = scenario.lead_minutes(pool.name, capacity.variant)
            for n in range(1, room + 1):
                states.append((capacity.variant, n, capacity.base_p95_ms, capacity.max_rps, lead))
        variants, counts, bases, rps, leads = zip(*states, strict=True)
        found.append(
            PoolOptions(
                pool.name,
                pool.hourly_price_usd * MINUTE_H,
                tuple(variants),
                tuple(counts),
                tuple(bases),
                tuple(rps),
                tuple(leads),
            )
        )
    return found


def _p95(options: Sequence[PoolOptions], rate: float) -> NDArray[np.float64]:
    """The p95 of every fleet (one axis per pool) at ``rate``, as ``replay.p95_of``:
    the load split in proportion to capacity puts every serving replica at the same
    utilisation, the fleet's load over its capacity; the worst pool's p95 counts."""
    axes = len(options)
    total: NDArray[np.float64] = np.zeros([len(o.counts) for o in options])
    for axis, o in enumerate(options):
        shape = [1] * axes
        shape[axis] = len(o.counts)
        total = total + (np.array(o.counts) * np.array(o.max_rps)).reshape(shape)
    serving = total > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(serving, rate / np.where(serving, total, 1.0), math.inf)
        tail = np.where(rho < 1.0, rho / (1.0 - np.minimum(rho, 0.999999)), math.inf)
    worst: NDArray[np.float64] = np.full(total.shape, -math.inf)
    for axis, o in enumerate(options):
        shape = [1] * axes
        shape[axis] = len(o.counts)
        on = (np.array(o.counts) > 0).reshape(shape)
        base = np.array(o.base_p95_ms).reshape(shape)
        with np.errstate(divide="ignore"):
            scale = np.where(
                np.array(o.max_rps) > 0, P95_TAIL * 1000.0 / np.maximum(o.max_rps, 1e-12), 0.0
            ).reshape(shape)
        with np.errstate(invalid="ignore"):  # inf x 0 for the empty state, masked out
            component = np.where(on, base + scale * np.where(rate > 0, tail, 0.0), -math.inf)
        worst = np.maximum(worst, component)
    p95 = np.where(serving, worst, 0.0 if rate <= 0 else math.inf)
    return np.asarray(p95, dtype=np.float64)


def _hold_cost(options: Sequence[PoolOptions]) -> NDArray[np.float64]:
    axes = len(options)
    cost: NDArray[np.float64] = np.zeros([len(o.counts) for o in options])
    for axis, o in enumerate(options):
        shape = [1] * axes
        shape[axis] = len(o.counts)
        cost = cost + (np.array(o.counts) * o.price_per_minute).reshape(shape)
    return cost


def _change_cost(o: PoolOptions, minute: int) -> NDArray[np.float64]:
    """[from, to]: the cold starts paid for the replicas ``to`` adds to ``from``."""
    size = len(o.counts)
    cost = np.zeros((size, size))
    for a in range(size):
        for b in range(size):
            kept = o.counts[a] if o.variants[a] == o.variants[b] else 0
            added = max(0, o.counts[b] - kept)
            cost[a, b] = added * min(o.lead_minutes[b], minute) * o.price_per_minute
    return cost


def _allowed(
    scenario: Scenario,
    options: Sequence[PoolOptions],
    rate: float,
    hold: NDArray[np.float64],
    fleet_size: NDArray[np.float64],
    min_replicas: int,
    seen: dict[float, NDArray[np.float64]],
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    p95 = seen.get(rate)
    if p95 is None:
        p95 = _p95(options, rate)
        if len(seen) < 64:  # traces repeat a few rates (idle minutes above all)
            seen[rate] = p95
    ok = fleet_size >= min_replicas
    if scenario.budget_usd is not None:
        ok &= hold * 60.0 <= scenario.budget_usd + 1e-9
    meets = ok & (p95 <= scenario.slo_ms)
    if meets.any():
        return meets, p95
    best = np.min(np.where(ok, p95, math.inf))
    return ok & (p95 <= best), p95


@dataclass(frozen=True)
class Schedule:
    """Per minute, each pool's (variant, count); and the total cost in USD."""

    fleets: list[tuple[tuple[str, int], ...]]
    cost_usd: float
    p95_ms: list[float]


def solve(scenario: Scenario, min_replicas: int = 1) -> Schedule:
    """The cheapest schedule (see the module's docstring for the rules)."""
    options = pool_options(scenario)
    axes = len(options)
    hold = _hold_cost(options)
    fleet_size: NDArray[np.float64] = np.zeros(hold.shape)
    for axis, o in enumerate(options):
        shape = [1] * axes
        shape[axis] = len(o.counts)
        fleet_size = fleet_size + np.array(o.counts, dtype=float).reshape(shape)
    longest = max(max(o.lead_minutes) for o in options)
    changes = [_change_cost(o, longest) for o in options]
    seen: dict[float, NDArray[np.float64]] = {}
    allowed, _ = _allowed(
        scenario, options, scenario.rates[0], hold, fleet_size, min_replicas, seen
    )
    value = np.where(allowed, hold, math.inf)
    choices: list[list[NDArray[np.intp]]] = []
    for minute in range(1, len(scenario.rates)):
        # Within the first cold start a replica added is paid only the trace's minutes.
        step = [_change_cost(o, minute) for o in options] if minute < longest else changes
        picks = []
        for axis in range(axes):
            # value[..., from, ...] + cost[from, to], minimised over ``from`` on this axis.
            moved = np.moveaxis(value, axis, -1)[..., :, None] + step[axis]
            pick = np.argmin(moved, axis=-2)
            best = np.take_along_axis(moved, pick[..., None, :], axis=-2)[..., 0, :]
            value = np.moveaxis(best, -1, axis)
            picks.append(np.moveaxis(pick, -1, axis))
        allowed, _ = _allowed(
            scenario, options, scenario.rates[minute], hold, fleet_size, min_replicas, seen
        )
        value = np.where(allowed, value + hold, math.inf)
        choices.append(picks)
    state = [int(i) for i in np.unravel_index(int(np.argmin(value)), value.shape)]
    total = float(np.min(value))
    states = [tuple(int(s) for s in state)]
    for picks in reversed(choices):
        # The axes were minimised in order 0..n-1: undo them in reverse.
        for axis in reversed(range(axes)):
            state[axis] = int(picks[axis][tuple(state)])
        states.append(tuple(int(s) for s in state))
    states.reverse()
    fleets = [
        tuple((o.variants[s], o.counts[s]) for o, s in zip(options, fleet, strict=True))
        for fleet in states
    ]
    p95 = [
        float(_p95(options, rate)[fleet])
        for rate, fleet in zip(scenario.rates, states, strict=True)
    ]
    return Schedule(fleets, total, p95)


def schedule_cost(scenario: Scenario, fleets: Sequence[Sequence[tuple[str, int]]]) -> float:
    """The cost of a schedule under the module's rules, written out plainly (no arrays):
    what ``brute_force`` compares and what the tests check ``solve`` against."""
    pools = scenario.pools
    total = 0.0
    for minute, fleet in enumerate(fleets):
        for pool, (variant, count) in zip(pools, fleet, strict=True):
            price = pool.hourly_price_usd * MINUTE_H
            total += count * price
            if minute == 0:
                continue
            was_variant, was_count = fleets[minute - 1][pools.index(pool)]
            kept = was_count if was_variant == variant else 0
            added = max(0, count - kept)
            if added:
                lead = scenario.lead_minutes(pool.name, variant)
                total += added * min(lead, minute) * price
    return total


def brute_force(scenario: Scenario, min_replicas: int = 1) -> float:
    """Every schedule of a small case tried: the cheapest cost meeting the SLO each minute
    (or, in a minute where no fleet can, with the lowest p95 there). Exponential: tests only."""
    per_pool = []
    for pool in scenario.pools:
        room = min(pool.max_replicas, scenario.max_replicas)
        states = [("", 0)] + [
            (c.variant, n)
            for c in scenario.capacities
            if c.pool == pool.name
            for n in range(1, room + 1)
        ]
        per_pool.append(states)
    fleets = list(itertools.product(*per_pool))

    def p95(fleet: tuple[tuple[str, int], ...], rate: float) -> float:
        """As ``replay.p95_of``, written out again: the load split by capacity."""
        serving = [
            (next(c for c in scenario.capacities if (c.variant, c.pool) == (v, p.name)), n)
            for (v, n), p in zip(fleet, scenario.pools, strict=True)
            if n
        ]
        if not serving:
            return 0.0 if rate <= 0 else math.inf
        total = sum(c.max_rps * n for c, n in serving)
        return max(c.p95_ms(rate * c.max_rps * n / total, n) for c, n in serving)

    allowed = []
    for rate in scenario.rates:
        ok = [
            f
            for f in fleets
            if sum(n for _, n in f) >= min_replicas
            and (
                scenario.budget_usd is None
                or sum(n * p.hourly_price_usd for (_, n), p in zip(f, scenario.pools, strict=True))
                <= scenario.budget_usd + 1e-9
            )
        ]
        meeting = [f for f in ok if p95(f, rate) <= scenario.slo_ms]
        if not meeting:
            lowest = min(p95(f, rate) for f in ok)
            meeting = [f for f in ok if p95(f, rate) <= lowest]
        allowed.append(meeting)
    return min(schedule_cost(scenario, list(seq)) for seq in itertools.product(*allowed))
