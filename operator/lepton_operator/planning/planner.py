"""The live planner: variant, pool and replicas for the load now and what is coming.

Pure and deterministic: the operator feeds it from Prometheus and the cluster, the
replay benchmark from a trace, the unit tests from literals; all run this code.

One evaluation:
1. **Correct the model** with reality (``correction``): the p95 observed of what serves
   now, against the prediction, teaches a latency scale, which applies to every
   candidate on the same pool (contention and hardware differences are the pool's),
   and that pool's throughput scale (what a replica serves), which is kept per pool;
   one Kalman filter weighs each reading by how much the queue made of it.
2. **Plan for when capacity arrives**: each candidate is sized for the load forecast
   one cold start ahead (its pool's provisioning delay plus its variant's measured load
   time; a rising trend is extrapolated, a falling one is not), and never below the
   highest load seen over that cold start (capacity ordered now arrives that late, and
   capacity released now takes that long to come back). A load that every recent day
   reached within the longest cold start of any option (``seasonal``: a daily step,
   such as a 09:00 batch) is planned for before it begins. **Headroom for noise**: the
   level of the cold start times the 95% quantile of the ratios between successive
   samples of the last 15 minutes (``variability_load``), capped at the highest seen.
   **Remember bursts**: an option whose whole room cannot even keep up with the
   highest load of the burst memory (about an hour) is not taken while another can;
   leaving the only pool that can absorb a burst bets that it will not recur, and
   losing that bet costs a full provisioning delay of the capable pool over the SLO.
3. **Cheapest SLO-meeting option** within each pool's room (at one price, the one that
   serves the most within the SLO: ``_room``); never over budget: when the budget
   cannot meet the SLO, the fastest affordable option is served and the reason names
   what meeting the SLO would cost.
4. **Do not flap**: replicas go up at once (within the scale-up window's highest
   recommendation) and down only to the highest recommendation of the scale-down
   window; a variant or pool change needs a saving of at least ``SWITCH_MARGIN`` and
   the same recommendation for as long as the saving takes to repay the cold starts
   the move risks (``switch_wait_s``), at most the scale-down window, unless what
   serves now misses the SLO, which switches at once.
5. **Scale down by expected cost** (``holding``): past the window, capacity that the
   load's recurring rises of the last hour (``recent_rates``) would need is kept while
   the misses they would bring, priced at ``MISS_WEIGHT`` x the fleet held per second
   over the SLO, and the capacity provisioned again, cost more than keeping it; a move
   to a cheaper variant or pool is put off the same way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

from lepton_operator.planning.capacity import Capacity
from lepton_operator.planning.correction import (
    LATENCY_VARIANCE,
    Fit,
    Scale,
    learn,
    scaled,
    unscaled,
)
from lepton_operator.planning.holding import (
    MISS_WEIGHT,
    Risk,
    expected_hourly_cost,
    miss_risk,
    sample_spacing_s,
    served_rps,
)
from lepton_operator.planning.outcome import Plan
from lepton_operator.planning.seasonal import DailyLoad, expected_load

SWITCH_MARGIN = 0.10  # a new variant/pool must save at least 10% per hour
# The load's recent variability: how long its samples are kept (``recent_rates``).
VARIABILITY_WINDOW_S = 3600.0
# The memory over which rises that recur hold capacity (``holding``): the samples of the
# last hour and, before them, the load's peak of each minute (``older_rates``). Bursts
# past a fleet's room that come every hour or two recur within it; within one hour they
# never did, and each lull dropped the capacity the next burst needed.
RISE_MEMORY_S = 6 * 3600.0
# Headroom from the load's recent variability: over this window, the ratios between
# successive samples, taken at this quantile, scale the level of the last cold start.
HEADROOM_WINDOW_S = 900.0
VARIABILITY_QUANTILE = 0.95
# The window of the load's trend (``decide.load_trend``): its rise, the slope of each half.
TREND_WINDOW_S = 120.0


@dataclass(frozen=True)
class PoolState:
    name: str
    hourly_price_usd: float
    provisioning_seconds: float = 0.0
    max_replicas: int | None = None  # room left on the pool (nodes), None: unbounded
    schedulable: bool = True  # False once its pods sat Pending past the timeout


@dataclass(frozen=True)
class Serving:
    variant: str
    pool: str
    replicas: int


@dataclass(frozen=True)
class Recommendation:
    time_s: float
    variant: str
    pool: str
    replicas: int


@dataclass(frozen=True)
class PlanInput:
    capacities: list[Capacity]
    pools: dict[str, PoolState]
    rate_rps: float
    slo_ms: float
    min_replicas: int = 1
    max_replicas: int = 10
    budget_usd: float | None = None
    trend_rps_per_s: float = 0.0
    recent_peak_rps: float = 0.0
    observed_p95_ms: float | None = None
    current: Serving | None = None
    # What observed latency taught (``correction``): the latency scale of the pool
    # serving and its variance, and each pool's throughput scale.
    correction: float = 1.0
    correction_variance: float = LATENCY_VARIANCE
    throughput: Mapping[str, Scale] = field(default_factory=dict)
    history: tuple[Recommendation, ...] = ()
    now_s: float = 0.0
    scale_up_window_s: float = 0.0
    scale_down_window_s: float = 300.0
    min_rate_rps: float = 0.0  # slo.minThroughputRps: capacity kept whatever the load
    # (time_s, req/s) samples of the recent load, at least the longest provisioning delay
    recent_rates: tuple[tuple[float, float], ...] = ()
    # (time_s, req/s): the load's highest of each minute before recent_rates, back to
    # RISE_MEMORY_S (decide.py keeps them): where rises that recur are read beyond the hour
    older_rates: tuple[tuple[float, float], ...] = ()
    burst_peak_rps: float = 0.0  # the highest load of the burst memory (decide.py)
    daily: DailyLoad | None = None  # the load at this time of day on recent days

    @cached_property
    def shape(self) -> LoadShape:
        """The figures of the load every option's planning load shares, read once per
        evaluation (``load_shape``): the planner sizes each of its options, several
        times over, from the same samples."""
        return load_shape(self)


@dataclass(frozen=True)
class LoadShape:
    """What the recent load says whatever the option: its variability over
    ``HEADROOM_WINDOW_S`` (the quantile of the ratios between successive samples, None
    with fewer than two, and the highest sample), the noise of its rises and the
    samples' spacing (``trend_ahead``), the load the daily pattern expects within
    the longest cold start of any option (``seasonal``), and the highest load of the
    memory, with and without the trend's window (``seen_peak``)."""

    ratio_spread: float | None
    headroom_peak_rps: float
    rise_noise_rps: float
    spacing_s: float
    daily_expected_rps: float
    memory_peak_rps: float  # the highest load the planner remembers (``seen_peak``)
    prior_peak_rps: float  # the same, from before the trend's window


@dataclass(frozen=True)
class LivePlan(Plan):
    """The plan, and what the planner carries to its next evaluation."""

    correction: float = 1.0
    correction_variance: float = LATENCY_VARIANCE
    throughput: Mapping[str, Scale] = field(default_factory=dict)
    history: tuple[Recommendation, ...] = field(default=())


@dataclass(frozen=True)
class _Option:
    capacity: Capacity
    replicas: int
    p95_ms: float
    cost: float
    meets: bool


def updated_fit(plan_input: PlanInput) -> Fit:
    """What the observed p95 of what serves teaches the capacity model
    (``correction.learn``): the latency scale and the serving pool's throughput scale.
    The caller says when a reading is the plan's own (``observed_p95_ms``, else None)."""
    fit = Fit(
        Scale(plan_input.correction, plan_input.correction_variance), dict(plan_input.throughput)
    )
    current = plan_input.current
    if current is None or plan_input.observed_p95_ms is None or plan_input.rate_rps <= 0:
        return fit
    capacity = _find(plan_input.capacities, current.variant, current.pool)
    if capacity is None:
        return fit
    return learn(
        fit,
        capacity,
        plan_input.rate_rps,
        current.replicas,
        plan_input.observed_p95_ms,
        slo_ms=plan_input.slo_ms,
    )


def _find(capacities: list[Capacity], variant: str, pool: str) -> Capacity | None:
    return next((c for c in capacities if (c.variant, c.pool) == (variant, pool)), None)


def lead_seconds(pool: PoolState, capacity: Capacity) -> float:
    """How long a replica asked for now takes to serve, its cold start: the pool's
    provisioning delay (a node) plus the variant's measured load time (the model), or
    the cold start last observed on the cluster when that was longer (a slower node
    pool than declared, a Triton start the builder does not see)."""
    declared = pool.provisioning_seconds + capacity.load_seconds
    return max(declared, capacity.observed_cold_start_seconds or 0.0)


def _planning_load(plan_input: PlanInput, pool: PoolState, capacity: Capacity) -> float:
    """The load to size for: the rising trend extrapolated over the option's cold start
    (``lead_seconds``) when it rises faster than the load's noise (``trend_ahead``),
    and never below the load at its recent variability, the recent peak, the highest
    load seen over that cold start, the throughput the spec asks to keep ready, nor the
    load the daily pattern expects within the longest cold start of any option
    (``seasonal``). A flat load is its own peak: no headroom is added."""
    lead = lead_seconds(pool, capacity)
    seen = [rate for time_s, rate in plan_input.recent_rates if plan_input.now_s - time_s <= lead]
    return max(
        variability_load(plan_input, lead),
        plan_input.rate_rps + trend_ahead(plan_input, lead),
        plan_input.recent_peak_rps,
        *seen,
        plan_input.min_rate_rps,
        plan_input.shape.daily_expected_rps,
        0.0,
    )


def load_shape(plan_input: PlanInput) -> LoadShape:
    """``PlanInput.shape``, computed."""
    samples = _headroom_samples(plan_input)
    ratios = [b / a for a, b in itertools.pairwise(samples) if a > 0]
    return LoadShape(
        ratio_spread=max(_quantile(ratios, VARIABILITY_QUANTILE), 1.0)
        if len(ratios) >= 2
        else None,
        headroom_peak_rps=max(samples, default=0.0),
        rise_noise_rps=rise_noise(samples),
        spacing_s=sample_spacing_s(sorted(plan_input.recent_rates)),
        daily_expected_rps=expected_load(
            plan_input.daily, plan_input.now_s, longest_lead(plan_input)
        ),
        memory_peak_rps=seen_peak(plan_input),
        prior_peak_rps=seen_peak(plan_input, before_s=TREND_WINDOW_S),
    )


def seen_peak(plan_input: PlanInput, before_s: float = 0.0) -> float:
    """The highest load the planner remembers: the burst memory's peak (about an hour),
    and the samples and per-minute peaks of the rise memory (``RISE_MEMORY_S``), which
    reach further back; with ``before_s``, only what is at least that old (the burst
    memory's peak, which holds the load now, left out). What a burst that returns rises
    to (``trend_ahead``)."""
    now = plan_input.now_s
    samples = (*plan_input.older_rates, *plan_input.recent_rates)
    remembered = [r for t, r in samples if now - t >= before_s]
    if before_s <= 0:
        remembered.append(plan_input.burst_peak_rps)
    return max(remembered, default=0.0)


def trend_ahead(plan_input: PlanInput, lead: float) -> float:
    """How far the rising trend takes the load over ``lead``: capped at doubling (a step
    is not a ramp) and, while the load is below the highest load remembered
    (``seen_peak``: the burst memory's hour and the rise memory's six), at that peak (a
    burst back to a level seen before rises to that level, not to twice the load now),
    and not at all while the load is above the highest of before the trend's window by
    less than its noise (``rise_noise``): it has reached that level, and a sample a hair
    above it is no new high. With the hour alone, a burst that came back after it was
    forgotten read its second sample as a ramp and asked for a second L4 it never
    needed; the bursts of the last six hours say where such a burst stops. A steady ramp
    to a new high is extrapolated still: it has no noise. None when the trend rises by
    no more per sample than the load's noise (``rise_noise``): that rise is noise, which
    the variability headroom meets already; extrapolated over a cold start, each upward
    wiggle on a burst's level asked for a second L4 that arrived three minutes later,
    for a load one L4 served."""
    rate = max(plan_input.rate_rps, 0.0)
    trend = max(plan_input.trend_rps_per_s, 0.0)
    if trend <= 0 or rate <= 0:
        return 0.0
    shape = plan_input.shape
    if shape.spacing_s > 0 and trend * shape.spacing_s <= shape.rise_noise_rps:
        return 0.0
    ahead = min(trend * lead, rate)
    if shape.memory_peak_rps > rate:
        return min(ahead, shape.memory_peak_rps - rate)
    if rate - shape.prior_peak_rps < shape.rise_noise_rps:
        return 0.0  # within its noise of a level seen before the trend began: reached
    return ahead


def _headroom_samples(plan_input: PlanInput) -> list[float]:
    """The load's samples of the last ``HEADROOM_WINDOW_S``, oldest first: what the
    variability headroom and the trend's noise are read from."""
    now = plan_input.now_s
    return [r for t, r in sorted(plan_input.recent_rates) if now - t <= HEADROOM_WINDOW_S]


def rise_noise(samples: list[float]) -> float:
    """Req/s: how far the load's rise from one sample to the next strays from its usual
    rise, at ``VARIABILITY_QUANTILE``, over ``samples`` (the last ``HEADROOM_WINDOW_S``'s,
    oldest first; 0 with fewer than three). A steady ramp rises by the same each sample,
    so it has none however steep and from however low a level; a noisy level strays by its noise; a
    single step is one rise among many. Differences, not ratios: the ratios of a ramp
    from a low level shrink as it climbs, and would read its own start as noise."""
    rises = [b - a for a, b in itertools.pairwise(samples)]
    if len(rises) < 2:
        return 0.0
    usual = _quantile(rises, 0.5)
    return _quantile([abs(rise - usual) for rise in rises], VARIABILITY_QUANTILE)


def variability_load(plan_input: PlanInput, lead: float) -> float:
    """The load at ``VARIABILITY_QUANTILE`` of its recent variability: the median load
    over the cold start ``lead``, times that quantile of the ratios between successive
    samples of the last ``HEADROOM_WINDOW_S``, and never above the highest of them.
    Noise around a level is met about 95% of the time rather than half of it (a level
    at the edge of the SLO with no headroom breaches it on every upward wiggle); a flat
    load gets none; ratios, not the spread around a mean, so a step or a trend is one
    ratio among many, not a spread, and the cap keeps a burst the level it reached."""
    shape = plan_input.shape
    if shape.ratio_spread is None:
        return 0.0
    now = plan_input.now_s
    recent = [r for t, r in plan_input.recent_rates if now - t <= lead] or [plan_input.rate_rps]
    return min(_quantile(recent, 0.5) * shape.ratio_spread, shape.headroom_peak_rps)


def _quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile by the order statistic at or below it (no interpolation): with
    few samples, one outlier (a single step among them) never sets the figure alone."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def longest_lead(plan_input: PlanInput) -> float:
    """The horizon of the daily pattern: the longest cold start of any option. A step
    the pattern expects must be met by what is chosen now unless something else can be
    brought up in time; judged over its own shorter cold start alone, a CPU option would
    look fine until the L4s needed for the step could no longer be Ready for it."""
    leads = [
        lead_seconds(plan_input.pools[c.pool], c)
        for c in plan_input.capacities
        if c.pool in plan_input.pools and plan_input.pools[c.pool].schedulable
    ]
    return max(leads, default=0.0)


def _daily_note(plan_input: PlanInput, best: _Option) -> str:
    """Why the plan holds more than the load seen asks, when the daily pattern is the
    reason: a scale-up ahead of a rise that has not begun must say so. Said only when
    the pattern changed the plan (the same evaluation without it chooses otherwise)."""
    lead = longest_lead(plan_input)
    expected = plan_input.shape.daily_expected_rps
    if expected <= 0:
        return ""
    without = _plan(replace(plan_input, daily=None))
    chosen = (best.capacity.variant, best.capacity.pool, best.replicas)
    if without is not None and (without.variant, without.pool, without.replicas) == chosen:
        return ""
    return (
        f"; sized for {expected:.0f} req/s, the load of every recent day within the "
        f"next {lead:.0f} s (daily pattern)"
    )


def _remembers_bursts(options: list[_Option], plan_input: PlanInput) -> list[_Option]:
    """The options whose whole room keeps up with the burst memory's peak, when any does.

    Sized for the load now, a pool that cannot even keep up with a load seen within the
    memory (CPU replicas against a burst only GPUs can serve) may look cheapest in the
    lull; moving there makes the next burst wait a full provisioning delay of the
    capable pool. When no option can keep up, none is preferred."""
    peak = plan_input.burst_peak_rps
    if peak <= 0:
        return options

    def keeps_up(option: _Option) -> bool:
        pool = plan_input.pools[option.capacity.pool]
        room = plan_input.max_replicas
        if pool.max_replicas is not None:
            room = min(room, pool.max_replicas)
        return room * option.capacity.max_rps >= peak

    capable = [o for o in options if keeps_up(o)]
    return capable or options


def _options(plan_input: PlanInput, correction: float) -> list[_Option]:
    current_pool = plan_input.current.pool if plan_input.current else None
    options = []
    for capacity in plan_input.capacities:
        pool = plan_input.pools.get(capacity.pool)
        if pool is None or not pool.schedulable:
            continue
        k = correction if capacity.pool == current_pool else 1.0
        room = plan_input.max_replicas
        if pool.max_replicas is not None:
            room = min(room, pool.max_replicas)
        if room < plan_input.min_replicas:
            continue
        load = _planning_load(plan_input, pool, capacity)
        replicas = capacity.replicas_for(load, plan_input.slo_ms, plan_input.min_replicas, room, k)
        meets = replicas is not None
        if replicas is None:
            # For the over-SLO fallback: about the most this pool can do, and no more.
            replicas = capacity.replicas_near_fastest(load, plan_input.min_replicas, room, k)
        options.append(
            _Option(
                capacity,
                replicas,
                capacity.p95_ms(load, replicas, k),
                replicas * pool.hourly_price_usd,
                meets,
            )
        )
    return options


def _affordable(cost: float, budget: float | None) -> bool:
    return budget is None or cost <= budget + 1e-9


def _within_budget(option: _Option, plan_input: PlanInput, correction: float) -> _Option:
    """The same variant and pool, cut to the replicas the budget pays for."""
    budget = plan_input.budget_usd
    pool = plan_input.pools[option.capacity.pool]
    cost = option.replicas * pool.hourly_price_usd  # option.cost may predate a hold
    if budget is None or pool.hourly_price_usd <= 0 or _affordable(cost, budget):
        return option
    replicas = max(0, min(option.replicas, math.floor(budget / pool.hourly_price_usd + 1e-9)))
    p95 = option.capacity.p95_ms(
        _planning_load(plan_input, pool, option.capacity), replicas, correction
    )
    return _Option(option.capacity, replicas, p95, replicas * pool.hourly_price_usd, False)


def plan(plan_input: PlanInput) -> LivePlan | None:
    """None only when no candidate can run anywhere (no schedulable pool).

    The reading of what serves corrects the model first (``updated_fit``); the plan is
    made on the corrected model: each pool's replicas serving its throughput scale as
    far as it is credited (``correction.credited``: up to a quarter beyond what one was
    seen to serve within the SLO), the serving pool's p95 times the latency scale."""
    fit = updated_fit(plan_input)
    corrected = replace(
        plan_input,
        capacities=[scaled(c, fit.credited(c, plan_input.slo_ms)) for c in plan_input.capacities],
        correction=fit.latency.value,
        correction_variance=fit.latency.variance,
        throughput=fit.throughput,
        observed_p95_ms=None,
    )
    return _plan(corrected)


def _plan(plan_input: PlanInput) -> LivePlan | None:
    """``plan`` on the corrected model (its input's correction already learned)."""
    correction = plan_input.correction
    every = _options(plan_input, correction)
    options = _remembers_bursts(every, plan_input)
    if not options:
        return None
    current = plan_input.current

    def key(option: _Option) -> tuple[float, int, float, float, float, str, str]:
        is_current = current is not None and (option.capacity.variant, option.capacity.pool) == (
            current.variant,
            current.pool,
        )
        # At zero replicas (scaled to zero, all free) the shorter cold start wins: the
        # next request waits for it, and no request sees the p95 before then. At the same
        # price the most room within the SLO (``_room``), then the lowest p95.
        cold = (
            lead_seconds(plan_input.pools[option.capacity.pool], option.capacity)
            if option.replicas == 0
            else 0.0
        )
        return (
            round(option.cost, 6),
            0 if is_current else 1,
            cold,
            -_room(plan_input, option, correction),
            option.p95_ms,
            option.capacity.variant,
            option.capacity.pool,
        )

    meeting = sorted((o for o in options if o.meets), key=key)
    affordable = [o for o in meeting if _affordable(o.cost, plan_input.budget_usd)]
    if affordable:
        best, slo_met, within = affordable[0], True, True
        why = f"cheapest meeting p95 {plan_input.slo_ms:g} ms at {plan_input.rate_rps:.1f} req/s"
    else:
        capped = [_within_budget(o, plan_input, _k(plan_input, o, correction)) for o in options]
        best = _fastest_or_current(plan_input, capped)
        slo_met = best.p95_ms <= plan_input.slo_ms
        # WithinBudget=False says the budget is what stands between the model and its
        # SLO; when nothing meets the SLO at any price, the budget is not the cause.
        within = not (meeting and plan_input.budget_usd is not None)
        why = (
            f"the budget ${plan_input.budget_usd:.2f}/h cannot meet p95 "
            f"{plan_input.slo_ms:g} ms (cheapest that would: ${meeting[0].cost:.2f}/h)"
            if meeting and plan_input.budget_usd is not None
            else f"no option meets p95 {plan_input.slo_ms:g} ms at {plan_input.rate_rps:.1f} req/s"
        )
        why += "; serving the fastest affordable"
    skipped = [
        o
        for o in every
        if o not in options
        and o.meets
        and _affordable(o.cost, plan_input.budget_usd)
        and o.cost < best.cost
    ]
    if skipped:
        cheaper = min(skipped, key=key)
        why += (
            f"; not {cheaper.capacity.variant} on {cheaper.capacity.pool} (cheaper now, but "
            f"its room cannot keep up with the {plan_input.burst_peak_rps:.0f} req/s "
            "of a recent burst)"
        )
    best, why = _hold_or_switch(plan_input, best, options, why)
    history = _remember(plan_input, best)
    best, why = _stabilize(plan_input, best, history, why, correction)
    pool = plan_input.pools[best.capacity.pool]
    if not _affordable(best.replicas * pool.hourly_price_usd, plan_input.budget_usd):
        # Holding replicas through a stabilization window (or a budget lowered since)
        # never justifies spending over the budget.
        best = _within_budget(best, plan_input, _k(plan_input, best, correction))
        within = False
        why += f"; held replicas cut to the budget ${plan_input.budget_usd:.2f}/h"
    if best.replicas == 0:
        # True zero (scaling.scaleToZero) saves the whole pool, and the next request
        # pays for it: say how much, so the choice is an informed one.
        why += (
            f"; at zero replicas the next request waits a cold start of about "
            f"{lead_seconds(pool, best.capacity):.0f} s ({pool.provisioning_seconds:g} s "
            f"to provision a node on {pool.name}, {best.capacity.load_seconds:g} s to load "
            f"{best.capacity.variant})"
        )
    why += _daily_note(plan_input, best)
    load = _planning_load(plan_input, pool, best.capacity)
    k = correction if current and best.capacity.pool == current.pool else 1.0
    p95 = best.capacity.p95_ms(load, best.replicas, k)
    return LivePlan(
        variant=best.capacity.variant,
        pool=best.capacity.pool,
        replicas=best.replicas,
        predicted_p95_ms=p95,
        hourly_cost_usd=best.replicas * pool.hourly_price_usd,
        slo_met=slo_met and p95 <= plan_input.slo_ms,
        within_budget=within,
        reason=(
            f"{why}: {best.capacity.variant} on {best.capacity.pool} x{best.replicas}, "
            f"predicted p95 {_ms(p95)}, ${best.replicas * pool.hourly_price_usd:.2f}/h"
            + _correction_note(plan_input, best.capacity, k)
        ),
        correction=correction,
        correction_variance=plan_input.correction_variance,
        throughput=plan_input.throughput,
        history=history,
    )


def _correction_note(plan_input: PlanInput, capacity: Capacity, latency: float) -> str:
    """What observed latency changed in the model the plan was sized with, if much: the
    latency scale of the pool serving, the throughput scale of the plan's pool and, when
    less of it was credited (``correction.credited``), how much."""
    said = []
    if abs(latency - 1) > 0.05:
        said.append(f"x{latency:.2f}")
    found = plan_input.throughput.get(capacity.pool)
    if found is not None and abs(found.value - 1) > 0.05:
        said.append(f"a replica serving x{found.value:.2f} its profiled req/s")
        if capacity.throughput_scale < found.value - 0.005:
            said[-1] += (
                f", credited x{capacity.throughput_scale:.2f}: a replica was seen to serve "
                f"x{found.proven:.2f} what its profile serves within the SLO"
            )
    return f" (model corrected {', '.join(said)} by observed latency)" if said else ""


def _fastest_or_current(plan_input: PlanInput, capped: list[_Option]) -> _Option:
    """The fastest affordable option when none meets the SLO, unless what serves now is
    about as fast.

    Only the serving pool's prediction carries the observed-latency correction, and
    only pools that served have a throughput scale; the others are the profiles' word.
    Compared as they stand, a pool made to look slow by its own correction loses to an
    equal one that is not, which then gets the correction in turn: the plan would
    alternate every pass. So the move is judged on
    the profiles alone, on equal footing, and must gain ``SWITCH_MARGIN``."""
    # An option the budget cut below the floor (zero replicas) answers nothing, however
    # fast a lone request would be on it: it comes last.
    best = min(
        capped,
        key=lambda o: (o.replicas < plan_input.min_replicas, o.p95_ms, o.cost, o.capacity.variant),
    )
    mine = _serving_option(capped, plan_input.current)
    if mine is None or mine is best or mine.replicas == 0:
        return best

    def profiled(option: _Option) -> float:
        # The throughput scales too are learned only where a pool served: undone here.
        capacity = unscaled(option.capacity)
        load = _planning_load(plan_input, plan_input.pools[capacity.pool], capacity)
        return capacity.p95_ms(load, option.replicas)

    return best if profiled(best) < profiled(mine) * (1 - SWITCH_MARGIN) else mine


def _serving_option(options: list[_Option], current: Serving | None) -> _Option | None:
    """The option for what serves now, if it is still among ``options``."""
    if current is None:
        return None
    return next(
        (
            o
            for o in options
            if (o.capacity.variant, o.capacity.pool) == (current.variant, current.pool)
        ),
        None,
    )


def _room(plan_input: PlanInput, option: _Option, correction: float) -> float:
    """Req/s the option serves within the SLO (``holding.served_rps``): between options
    of one price, what decides how soon the load outgrows them. A lower p95 at the load
    now buys nothing while both meet the SLO; a variant faster when idle that queues
    sooner (torchscript against fp32 on the CPU: 23.7 against 25.1 req/s within 100 ms)
    needs a second replica, or a move, at a level one replica of the other holds (the
    30 req/s diurnal cycles paid for two torchscript replicas through their peaks)."""
    k = _k(plan_input, option, correction)
    return served_rps(option.capacity, option.replicas, plan_input.slo_ms, k)


def _k(plan_input: PlanInput, option: _Option, correction: float) -> float:
    current = plan_input.current
    return correction if current is not None and option.capacity.pool == current.pool else 1.0


def _ms(value: float) -> str:
    """A p95 for the reason: a tenth of a millisecond, or two significant digits below
    one (a small model's 0.03 ms is not 0.0)."""
    if not math.isfinite(value):
        return "unbounded (overloaded)"
    return f"{value:.1f} ms" if value >= 1 else f"{value:.2g} ms"


def _hold_or_switch(
    plan_input: PlanInput, best: _Option, options: list[_Option], why: str
) -> tuple[_Option, str]:
    """Keep the current variant and pool unless the change is worth it."""
    current = plan_input.current
    if current is None or (best.capacity.variant, best.capacity.pool) == (
        current.variant,
        current.pool,
    ):
        return best, why
    mine = _serving_option(options, current)
    if mine is None or not mine.meets or not _affordable(mine.cost, plan_input.budget_usd):
        return best, why  # what serves cannot do the job: switch now
    if best.cost > mine.cost * (1 - SWITCH_MARGIN):
        return mine, f"{why}; staying (a change would save under {SWITCH_MARGIN:.0%})"
    return best, why


def _remember(plan_input: PlanInput, best: _Option) -> tuple[Recommendation, ...]:
    """Recommendations of the last two windows: enough to tell for how long a change
    has been preferred without an unbounded status."""
    window = 2 * max(plan_input.scale_up_window_s, plan_input.scale_down_window_s)
    kept = tuple(h for h in plan_input.history if plan_input.now_s - h.time_s <= window)
    return (
        *kept,
        Recommendation(plan_input.now_s, best.capacity.variant, best.capacity.pool, best.replicas),
    )


def _preferred_for(
    history: tuple[Recommendation, ...], target: tuple[str, str], now: float
) -> float:
    """Seconds for which every recommendation has named ``target``."""
    since = now
    for entry in sorted(history, key=lambda h: h.time_s, reverse=True):
        if (entry.variant, entry.pool) != target:
            break
        since = entry.time_s
    return now - since


def _stabilize(
    plan_input: PlanInput,
    best: _Option,
    history: tuple[Recommendation, ...],
    why: str,
    correction: float = 1.0,
) -> tuple[_Option, str]:
    current = plan_input.current
    if current is None:
        return best, why
    now = plan_input.now_s
    window = plan_input.scale_down_window_s
    down_window = [h for h in history if now - h.time_s < window]
    same_target = (best.capacity.variant, best.capacity.pool)
    if same_target != (current.variant, current.pool):
        capacity = _find(plan_input.capacities, current.variant, current.pool)
        needed = _current_needs(plan_input)
        if capacity is None or needed is None:
            return best, why
        pool = plan_input.pools[current.pool]
        replicas = max(needed, current.replicas)  # up if needed, never down meanwhile
        held = _Option(
            capacity,
            replicas,
            capacity.p95_ms(_planning_load(plan_input, pool, capacity), replicas),
            replicas * pool.hourly_price_usd,
            True,
        )
        if best.cost < held.cost:
            staying = _keep_by_expected_cost(plan_input, held, best, correction)
            if staying is not None:
                return held, f"{why}; staying on {current.variant} on {current.pool}{staying}"
        wait = min(window, switch_wait_s(plan_input, held, best))
        bridged = held.replicas <= current.replicas  # what serves meets the load meanwhile
        if bridged and best.cost < held.cost and _pattern_keeps(plan_input, held, best, correction):
            # The saving lasts as long as the pattern: nothing to wait for.
            return best, (
                f"{why}; moving at once (expected cost: the load's rises recur past what "
                f"{current.variant} on {current.pool} serves at its least, and "
                f"{best.capacity.variant} on {best.capacity.pool} serves them)"
            )
        if _preferred_for(history, same_target, now) < wait:
            return held, (
                f"{why}; holding {current.variant} on {current.pool} until "
                f"{best.capacity.variant} on {best.capacity.pool} has been preferred "
                f"for {wait:.0f} s"
            )
        return best, why
    if best.replicas > current.replicas:
        up = [
            h.replicas
            for h in history
            if (h.variant, h.pool) == same_target and now - h.time_s <= plan_input.scale_up_window_s
        ]
        return replace(best, replicas=max([best.replicas, *up])), why
    if best.replicas < current.replicas:
        recent = [h.replicas for h in down_window if (h.variant, h.pool) == same_target]
        covered = _preferred_for(history, same_target, now) >= window
        # Until the recommendations span the whole window, what they do not cover is
        # assumed to have wanted what runs now: a restart never scales down at once.
        target = min(current.replicas, max([best.replicas, *recent]))
        if not covered:
            target = current.replicas
        k = correction if best.capacity.pool == current.pool else 1.0
        kept, note = (best.replicas, "")
        if best.replicas > 0:
            # Zero is scale-to-zero's own choice: the activator holds what comes while a
            # replica starts, and maxColdStartSeconds says when that wait is too long.
            kept, note = _replicas_by_expected_cost(plan_input, best, current.replicas, k)
        if kept > target:
            target = kept
            why += note
        elif target > best.replicas:
            why += f"; scale-down held by the {plan_input.scale_down_window_s:g} s window"
        return replace(best, replicas=target), why
    return best, why


def switch_wait_s(plan_input: PlanInput, held: _Option, best: _Option) -> float:
    """How long a cheaper variant or pool must stay preferred before the plan moves: the
    time in which what it saves repays what the move risks, the new option's cold start
    paid before it serves and, should the load come back, the current one's cold start
    paid again (ski rental: waiting that long never costs more than twice the best
    choice in hindsight). Large savings move at once (a CPU pool grown to many times
    one GPU's price), small ones wait; ``inf`` when nothing is saved. The scale-down
    window bounds it (``_stabilize``)."""
    saving = held.cost - best.cost  # $/h
    if saving <= 0:
        return math.inf
    here = plan_input.pools[held.capacity.pool]
    there = plan_input.pools[best.capacity.pool]
    risked = (
        lead_seconds(there, best.capacity) * best.cost
        + lead_seconds(here, held.capacity) * held.cost
    )  # $/h x s
    return risked / saving


def _current_needs(plan_input: PlanInput) -> int | None:
    """Replicas what serves now needs to meet the SLO; None if it cannot."""
    current = plan_input.current
    assert current is not None
    capacity = _find(plan_input.capacities, current.variant, current.pool)
    pool = plan_input.pools.get(current.pool)
    if capacity is None or pool is None or not pool.schedulable:
        return None
    room = plan_input.max_replicas
    if pool.max_replicas is not None:
        room = min(room, pool.max_replicas)
    return capacity.replicas_for(
        _planning_load(plan_input, pool, capacity),
        plan_input.slo_ms,
        plan_input.min_replicas,
        room,
        plan_input.correction,
    )


def _risk(plan_input: PlanInput, served: float, lead_s: float) -> Risk:
    """``holding.miss_risk`` over the rise memory: the per-minute peaks of the older
    hours, then the samples of the last, seen as late as the load is sampled now."""
    recent = sorted(plan_input.recent_rates)
    return miss_risk(
        (*plan_input.older_rates, *recent),
        plan_input.now_s,
        plan_input.rate_rps,
        served,
        lead_s,
        RISE_MEMORY_S,
        spacing_s=sample_spacing_s(recent),
    )


def _risk_note(risk: Risk, saving_usd: float, replicas: str) -> str:
    return (
        f" (expected cost: the load rose {risk.rises} times in the last "
        f"{RISE_MEMORY_S / 3600:g} h past what {replicas} would serve, about "
        f"{risk.miss_share:.1%} of the time over the SLO at {MISS_WEIGHT:g}x the price of "
        f"what is held, more than the ${saving_usd:.2f}/h dropping saves)"
    )


def _replicas_by_expected_cost(
    plan_input: PlanInput, best: _Option, held: int, correction: float
) -> tuple[int, str]:
    """Scale-down by expected cost (``holding``): of the counts from the one recommended
    up to the one held, the one whose price plus expected misses, should the recent
    rises recur, is lowest; the recommendation when the rises do not recur."""
    capacity = best.capacity
    pool = plan_input.pools[capacity.pool]
    lead = lead_seconds(pool, capacity)
    held_price = held * pool.hourly_price_usd
    chosen, lowest, chosen_risk = best.replicas, math.inf, None
    for replicas in range(best.replicas, held + 1):
        served = served_rps(capacity, replicas, plan_input.slo_ms, correction)
        risk = _risk(plan_input, served, lead)
        cost = expected_hourly_cost(replicas * pool.hourly_price_usd, held_price, risk, lead)
        if replicas == best.replicas:
            chosen_risk = risk
            if not risk.recurs:
                return best.replicas, ""  # nothing recurs: the recommendation stands
        if cost < lowest - 1e-9:
            chosen, lowest = replicas, cost
        if not risk.recurs:
            break  # every larger count costs at least its price, more than this one
    if chosen == best.replicas or chosen_risk is None:
        return best.replicas, ""
    saving = (chosen - best.replicas) * pool.hourly_price_usd
    return chosen, f"; scale-down to x{chosen}, not x{best.replicas}" + _risk_note(
        chosen_risk, saving, f"x{best.replicas}"
    )


def _keep_by_expected_cost(
    plan_input: PlanInput, held: _Option, best: _Option, correction: float
) -> str | None:
    """A move to a cheaper variant or pool by expected cost (``holding``): kept from
    when the recent rises past what the cheaper option serves recur and the misses they
    would bring cost more than the move saves. The reason's note when kept, else None.
    The misses last until capacity is back: the shorter of the two cold starts (the
    cheaper pool scaled up, or the held one asked for again)."""
    current = plan_input.current
    assert current is not None
    here = plan_input.pools[held.capacity.pool]
    there = plan_input.pools[best.capacity.pool]
    lead = min(lead_seconds(here, held.capacity), lead_seconds(there, best.capacity))
    k_best = correction if best.capacity.pool == current.pool else 1.0
    drop = _risk(
        plan_input, served_rps(best.capacity, best.replicas, plan_input.slo_ms, k_best), lead
    )
    if not drop.recurs:
        return None
    stay = _risk(
        plan_input,
        served_rps(held.capacity, held.replicas, plan_input.slo_ms, correction),
        lead,
    )
    moving = expected_hourly_cost(best.cost, held.cost, drop, lead)
    staying = expected_hourly_cost(held.cost, held.cost, stay, lead)
    if moving < staying:
        return None
    return _risk_note(
        drop, held.cost - best.cost, f"{best.capacity.variant} on {best.capacity.pool}"
    )


LULL_QUANTILE = 0.25  # the load between rises: this quantile of the memory's samples


def _pattern_keeps(plan_input: PlanInput, held: _Option, best: _Option, correction: float) -> bool:
    """Whether a move to the cheaper ``best`` is one the pattern of the last hour keeps:
    its rises recur past what the held variant and pool serve at their least from the
    load between rises (so, back in a lull, it would be held through it by expected
    cost), and none recur past what ``best`` serves. The ski-rental wait
    (``switch_wait_s``) bets that a saving may not last; under such a pattern it does,
    and every minute of waiting pays the dearer fleet for nothing (five CPU replicas
    through each tenfold burst while the L4 that serves them all waited its turn)."""
    now = plan_input.now_s
    samples = [r for t, r in plan_input.recent_rates if now - t <= VARIABILITY_WINDOW_S]
    if len(samples) < 3:
        return False
    here = plan_input.pools[held.capacity.pool]
    there = plan_input.pools[best.capacity.pool]
    lead = min(lead_seconds(here, held.capacity), lead_seconds(there, best.capacity))
    current = plan_input.current
    assert current is not None
    least = max(plan_input.min_replicas, 1)
    low = miss_risk(
        plan_input.recent_rates,
        now,
        _quantile(samples, LULL_QUANTILE),
        served_rps(held.capacity, least, plan_input.slo_ms, correction),
        lead,
        VARIABILITY_WINDOW_S,
    )
    if not low.recurs:
        return False
    k_best = correction if best.capacity.pool == current.pool else 1.0
    served = served_rps(best.capacity, best.replicas, plan_input.slo_ms, k_best)
    return not _risk(plan_input, served, lead).recurs
