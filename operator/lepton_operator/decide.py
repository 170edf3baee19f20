"""From what the status and Prometheus say to one plan: the live planner's glue.

Pure (the status and dataclasses in; a plan and the planner's memory, the typed
``PlannerMemory`` of the API, out), so the reconcile pass stays I/O and the planner
stays free of Kubernetes shapes. What it
guards against, beyond what the planner does:

- one planner: a model that never had traffic figures is planned by the live planner
  given no traffic (the load the spec asks to keep ready, ``minThroughputRps``, and
  nothing remembered), so the first plan and every later one follow one policy;
- when this pass has no fresh figures (Prometheus down, or between refreshes) it holds
  the replica count (within the spec's bounds): no decision is taken blind;
- ``spec.replicas`` (the scale subresource, or an HPA behind it) pins the count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass

from lepton_operator.api.spec import LeptonModelSpec, PoolSpec
from lepton_operator.api.status import (
    DailyLoadStatus,
    LeptonModelStatus,
    LiveFigures,
    PlannerMemory,
    PlannerRecommendation,
    ThroughputScale,
    VariantStatus,
)
from lepton_operator.live.sample import LiveSample
from lepton_operator.planning import NoPlan, Plan
from lepton_operator.planning.capacity import Capacity, capacity_from_profiles
from lepton_operator.planning.correction import LATENCY_VARIANCE, Scale
from lepton_operator.planning.planner import (
    HEADROOM_WINDOW_S,
    RISE_MEMORY_S,
    TREND_WINDOW_S,
    VARIABILITY_WINDOW_S,
    LivePlan,
    PlanInput,
    PoolState,
    Recommendation,
    Serving,
    longest_lead,
    plan,
)
from lepton_operator.planning.seasonal import (
    DailyLoad,
    from_status,
    next_change_s,
    observe,
    to_status,
)
from lepton_operator.report import Profile
from lepton_operator.timestamps import parse_time

PEAK_WINDOW_S = 30.0
# How far the load may move within the latency window for its p95 to correct the model.
STEADY_SHARE = 0.2
# Triton's latency quantiles (``nv_inference_request_summary_us``) are a sliding summary
# of about the last minute (prometheus-cpp's summary age; after make demo's plateau ended
# the p95 stayed at the plateau's for 52 to 68 s at 5 req/s, 2026-12-07). A p95 read
# sooner after a scale or a change of load still holds the seconds before it.
LATENCY_WINDOW_S = 60.0
# How long a burst is remembered: an option that cannot keep up with the highest load of
# this window is not chosen while another can (the planner's ``burst_peak_rps``).
BURST_MEMORY_S = 3600.0
MINUTE_S = 60.0  # the resolution of the rise memory beyond the hour of samples
RISE_REVIEW_S = 900.0  # how often ageing minutes of the rise memory wake a model at most


@dataclass
class Decided:
    plan: Plan | NoPlan
    planner: PlannerMemory | None = None  # status.planner; None: the model has none yet


def capacities(
    accepted: list[VariantStatus],
    profiles: dict[tuple[str, str], list[Profile]],
    slo_ms: float,
    cold_starts: dict[tuple[str, str], float],
) -> list[Capacity]:
    """One capacity per accepted row: from its measured profiles, or, for a report that
    gave only the table row, from the row's own figures (its p95 and throughput)."""
    found = []
    for row in accepted:
        capacity = capacity_from_profiles(
            row.variant,
            row.pool,
            profiles.get((row.pool, row.variant)) or [],
            slo_ms,
            row.load_seconds,
        ) or Capacity(
            row.variant,
            row.pool,
            base_p95_ms=row.p95_ms or 0.0,
            max_rps=row.throughput_rps or 0.0,
            load_seconds=row.load_seconds or 0.0,
        )
        found.append(
            dataclasses.replace(
                capacity, observed_cold_start_seconds=cold_starts.get((row.pool, row.variant))
            )
        )
    return found


def load_trend(rates: list[list[float]], now: float) -> float:
    """Req/s per second over the trend window: the planner sizes for the load one
    provisioning delay ahead, and the replay benchmark feeds it the same figure.

    A trend is a rise that holds over the whole window: the slope of each half (end to
    end, split at the sample nearest the middle), the smaller of the two, and none when
    either half does not rise. A step or a noisy wiggle rises in one half only; taken
    end to end, the jump into a burst and the noise on its level read as a ramp, and
    each was extrapolated over a cold start (a second L4 asked for, three minutes
    late, for a burst one L4 serves). With two samples the halves cannot be told
    apart: end to end."""
    window = sorted((t, r) for t, r in rates if now - t <= TREND_WINDOW_S)
    if len(window) < 2 or window[-1][0] <= window[0][0]:
        return 0.0
    if len(window) == 2:
        return _slope(window[0], window[-1])
    middle_t = (window[0][0] + window[-1][0]) / 2
    split = min(range(1, len(window) - 1), key=lambda i: abs(window[i][0] - middle_t))
    first, second = _slope(window[0], window[split]), _slope(window[split], window[-1])
    return max(min(first, second), 0.0)


def _slope(a: tuple[float, float], b: tuple[float, float]) -> float:
    return (b[1] - a[1]) / (b[0] - a[0]) if b[0] > a[0] else 0.0


def rates_window_s(provisioning_seconds: list[float]) -> float:
    """How long the rate samples are kept: the trend and peak windows, and the longest
    cold start (each option is sized for the highest load over its own: its pool's
    provisioning delay plus its variant's load time)."""
    return max([TREND_WINDOW_S, PEAK_WINDOW_S, *provisioning_seconds])


def memory_window_s(provisioning_seconds: list[float]) -> float:
    """How long the rate samples are kept in ``status.planner.rates``: the sizing window
    (``rates_window_s``) or the hour over which recurring rises hold capacity
    (``planner.VARIABILITY_WINDOW_S``; the headroom reads its last quarter), whichever
    is longer."""
    return max(rates_window_s(provisioning_seconds), VARIABILITY_WINDOW_S)


def remember_peak(peaks: list[list[float]], now: float, rate: float) -> list[list[float]]:
    """The sliding maximum of the load over ``BURST_MEMORY_S``, kept small: ``[time,
    rate]`` pairs with strictly falling rates (a sample is dropped once a later one is
    at least as high, as it can never be the window's maximum again)."""
    kept = [[t, r] for t, r in peaks if now - t <= BURST_MEMORY_S]
    while kept and kept[-1][1] <= rate:
        kept.pop()
    return [*kept, [now, rate]]


def remember_minute_peaks(minutes: list[list[float]], now: float, rate: float) -> list[list[float]]:
    """The load's highest of each minute, ``[minute start, req/s]``, over the rise memory
    (``planner.RISE_MEMORY_S``): what the expected-cost scale-down reads beyond the hour
    of samples, at most 360 pairs however often the load is sampled."""
    minute = math.floor(now / MINUTE_S) * MINUTE_S
    kept = [[t, r] for t, r in minutes if now - t <= RISE_MEMORY_S]
    if kept and kept[-1][0] == minute:
        kept[-1][1] = max(kept[-1][1], rate)
        return kept
    return [*kept, [minute, rate]]


def older_rates(
    minutes: list[list[float]], rates: list[list[float]]
) -> tuple[tuple[float, float], ...]:
    """The minute peaks from before the first sample of ``rates`` (the planner's
    ``older_rates``): the samples speak for the minutes they cover."""
    since = min((t for t, _ in rates), default=math.inf)
    return tuple((t, r) for t, r in minutes if t + MINUTE_S <= since)


def burst_peak(peaks: list[list[float]], now: float) -> float:
    """The highest load of the burst memory (0 when nothing is remembered)."""
    return max([r for t, r in peaks if now - t <= BURST_MEMORY_S] or [0.0])


def planned_replicas_ready(live: LiveFigures | None, current: Serving) -> bool:
    """Whether the Ready replicas (``status.live.replicasByPool``, as last read) are the
    ones planned: the only time the observed p95 says how right the capacity model is.
    True when the count is not known (no Deployment read yet): nothing says otherwise."""
    by_pool = live.replicas_by_pool if live else None
    if not by_pool:
        return True
    ready = {pool: int(n) for pool, n in by_pool.items() if n}
    return ready == {current.pool: current.replicas}


def steady_load(rates: list[list[float]], window_s: float = 0.0) -> bool:
    """Whether the load held still over the latency window: every sample of the last
    ``window_s`` (and the one before the latest, at least) within STEADY_SHARE of the
    latest, the rate the p95 is judged at.

    Prometheus' p95 and request rate cover about the same window, but while the load
    moves they describe different loads: the p95 is dominated by the heavier load's many
    requests, the rate is the window's mean. After a drop, that p95 compared with the
    prediction at the lower mean rate blamed the model for a load already gone: the
    correction grew about 3x and, with the peak still held, scaled an idle model up
    (x2 -> x3 and, in another run, x1 -> x2 within 20 s of a 40 req/s load stopping:
    make demo, 2026-12-06). So the observed
    latency corrects the model only at a steady load; a first sample counts as steady."""
    if len(rates) < 2:
        return True
    now_t, now = rates[-1]
    window = [r for t, r in rates[:-1] if now_t - t <= window_s] or [rates[-2][1]]
    return all(abs(now - r) <= STEADY_SHARE * max(now, r) for r in window)


def settled_since(
    previous: float | None, decision_time: str | None, settled: bool, now_s: float
) -> float | None:
    """Since when the Ready replicas have been the decision's alone (``PlannerMemory
    .ready_since``): the remembered time while they still are, else this sample's; never
    before the decision last changed (a scale-down the samples did not see under way).
    None while they are not."""
    if not settled:
        return None
    since = now_s if previous is None else previous
    if decision_time:
        with contextlib.suppress(ValueError):  # a hand-edited time: the remembered one
            since = max(since, parse_time(decision_time).timestamp())
    return since


def decide(
    spec: LeptonModelSpec,
    pools: list[PoolSpec],
    accepted: list[VariantStatus],
    profiles: dict[tuple[str, str], list[Profile]],
    status: LeptonModelStatus,
    sample: LiveSample | None,
    now_s: float,
    unschedulable: set[str] | frozenset[str] = frozenset(),
    retry_at: dict[str, float] | None = None,
    serving: frozenset[tuple[str, str]] | None = None,
    rate_window_s: float = 60.0,
) -> Decided:
    """``unschedulable``: pools left out, with ``retry_at`` (Unix seconds) saying until
    when for those backing off (planning/backoff.py). ``serving``: the (pool, variant)
    pairs of the Ready serving pods, when known; while others than the current decision
    serve, the observed latency is theirs too and corrects nothing. ``rate_window_s``:
    the range of the rates sampled (``config.prometheus.rateWindow``); each rate sample
    is the mean of that range, so those of the last ``LATENCY_WINDOW_S - rate_window_s``
    (and the one before the latest, at least) describe the load the p95 covers."""
    memory = status.planner
    remembered = memory or PlannerMemory()
    if not accepted:
        return Decided(
            NoPlan("no variant passed its build and accuracy guard on any allowed pool"), memory
        )
    decision = status.decision
    pairs = {(r.pool, r.variant) for r in accepted}
    current = None
    if decision is not None and (decision.pool, decision.variant) in pairs:
        current = Serving(decision.variant, decision.pool, decision.replicas)
    live = status.live
    rates: list[list[float]] = [list(x) for x in remembered.rates]
    known = rates[-1][1] if rates else _model_rate(live)
    observed_rate = sample.model_rps if sample else known
    # No traffic figure ever (none yet, or Prometheus down since the start): planned as
    # no traffic, the spec's bounds as they are, and nothing remembered. A pool whose
    # pods wait for a node is left all the same: serving must not hang on figures.
    blind = observed_rate is None
    rate = observed_rate or 0.0
    peaks: list[list[float]] = [list(x) for x in remembered.peaks]
    minutes: list[list[float]] = [list(x) for x in remembered.minutes]
    daily = from_status(remembered.daily.model_dump() if remembered.daily else None)
    cold_starts = {(c.pool, c.variant): c.seconds for c in status.cold_starts}
    sizing_window = PEAK_WINDOW_S
    if sample is not None:
        loading = max([r.load_seconds or 0.0 for r in accepted] or [0.0])
        leads = [p.provisioning_seconds + loading for p in pools] + list(cold_starts.values())
        sizing_window = rates_window_s(leads)
        keep = memory_window_s(leads)
        rates = [x for x in rates if now_s - x[0] <= keep]
        seen_rps = round(sample.model_rps, 3)  # cache hits need no replica
        rates.append([now_s, seen_rps])
        peaks = remember_peak(peaks, now_s, seen_rps)
        minutes = remember_minute_peaks(minutes, now_s, seen_rps)
        daily = observe(daily, now_s, seen_rps)
    observed = sample.p95_ms if sample else (live.p95_ms if live else None)
    alone = current is not None and not (
        serving is not None and serving - {(current.pool, current.variant)}
    )
    ready = alone and current is not None and planned_replicas_ready(live, current)
    ready_since = remembered.ready_since
    if sample is not None:
        ready_since = settled_since(ready_since, decision.time if decision else None, ready, now_s)
    if not alone:
        observed = None  # nothing of this build serves yet, or a move under way (mixed p95)
    elif not ready:
        # A scale still provisioning (or draining): the p95 is that of the replicas
        # Ready, not of those planned, and compared with the plan's prediction it would
        # blame the model for the cold start (the correction grew 1.5-2x so).
        observed = None
    elif ready_since is None or now_s - ready_since < LATENCY_WINDOW_S:
        # Ready, but Triton's summary still holds the seconds before: the overload of a
        # scale-up's wait taught the correction x0.57 -> x1.70 (make demo, 2026-12-07).
        observed = None
    elif sample is not None and not steady_load(rates, LATENCY_WINDOW_S - rate_window_s):
        observed = None  # the p95 and the rate of a moving load describe different loads
    slo = spec.slo.p95_latency_ms
    lowest, highest = spec.scaling.min_replicas, spec.scaling.max_replicas
    if spec.replicas is not None:
        lowest = highest = spec.replicas
    elif sample is None and current is not None and not blind:
        # No fresh figures (Prometheus down, or between refreshes): the count is held,
        # within the spec's bounds. Nothing new is known, so nothing new is decided;
        # only the passing of time would change the plan (windows ageing out), and
        # that is no reason to scale in either direction.
        lowest = highest = min(max(lowest, current.replicas), highest)
    elif blind:
        # Like Knative's initial scale: the first plan serves at least one replica, even
        # for a model allowed to scale to zero, so its canary proves the build serves;
        # the live planner takes it to zero once the figures show no traffic.
        lowest = min(max(lowest, 1), highest)
    history = tuple(
        Recommendation(h.time, h.variant, h.pool, h.replicas) for h in remembered.history
    )
    plan_input = PlanInput(
        capacities=capacities(accepted, profiles, slo, cold_starts),
        pools={
            p.name: PoolState(
                p.name,
                p.hourly_price_usd,
                float(p.provisioning_seconds),
                schedulable=p.name not in unschedulable,
            )
            for p in pools
        },
        rate_rps=float(rate),
        slo_ms=slo,
        min_replicas=lowest,
        max_replicas=highest,
        budget_usd=spec.budget.max_hourly_usd if spec.budget else None,
        trend_rps_per_s=load_trend(rates, now_s),
        recent_peak_rps=max([r for t, r in rates if now_s - t <= PEAK_WINDOW_S] or [float(rate)]),
        observed_p95_ms=observed,
        # Blind, nothing is remembered: no load to stabilise against, no latency to
        # correct by (the plan recommended in advisory mode is the one applied).
        current=None if blind else current,
        correction=remembered.correction or 1.0,
        correction_variance=(
            LATENCY_VARIANCE
            if remembered.correction_variance is None
            else remembered.correction_variance
        ),
        throughput={
            t.pool: Scale(t.scale, t.variance, t.covariance, t.proven)
            for t in remembered.throughput
        },
        history=() if blind else history,
        now_s=now_s,
        scale_up_window_s=float(spec.scaling.scale_up_stabilization_seconds),
        scale_down_window_s=float(spec.scaling.scale_down_stabilization_seconds),
        min_rate_rps=spec.slo.min_throughput_rps or 0.0,
        recent_rates=tuple((t, r) for t, r in rates),
        burst_peak_rps=burst_peak(peaks, now_s),
        older_rates=older_rates(minutes, rates),
        daily=daily,
    )
    result = plan(plan_input)
    if result is None:
        return Decided(_nowhere(unschedulable), memory)
    if blind:
        return Decided(_left_out(_first(result, lowest), unschedulable, retry_at), memory)
    total_rps = sample.request_rate_rps if sample else ((live.request_rate if live else 0.0) or 0.0)
    hit_rps = (sample.cache_hit_rps or 0.0) if sample else total_rps - (_model_rate(live) or 0.0)
    if hit_rps > 0:  # said on every pass, fresh figures or not, so the reason holds still
        result = dataclasses.replace(
            result,
            reason=f"{result.reason}; {hit_rps:.3g} of {total_rps:.3g} req/s answered from "
            "Triton's response cache need no replica",
        )
    review = (
        review_at(
            rates,
            peaks,
            daily,
            now_s,
            float(rate),
            longest_lead(plan_input),
            sizing_window,
            minutes,
        )
        if sample
        else remembered.review_at
    )
    new_memory = PlannerMemory(
        correction=result.correction if sample else remembered.correction,
        correction_variance=(
            round(result.correction_variance, 6) if sample else remembered.correction_variance
        ),
        throughput=(
            [
                ThroughputScale(
                    pool=pool,
                    scale=t.value,
                    variance=round(t.variance, 6),
                    covariance=round(t.covariance, 6),
                    proven=t.proven,
                )
                for pool, t in sorted(result.throughput.items())
                if pool in {p.name for p in pools}  # a pool no longer offered is forgotten
            ]
            if sample
            else remembered.throughput
        ),
        # Only fresh figures are recommendations; passes in between leave no trace.
        history=[
            PlannerRecommendation(
                time=h.time_s, variant=h.variant, pool=h.pool, replicas=h.replicas
            )
            for h in (result.history if sample else history)
        ],
        rates=rates,
        peaks=peaks,
        minutes=minutes,
        daily=DailyLoadStatus.model_validate(to_status(daily)),
        ready_since=None if ready_since is None else round(ready_since, 3),
        review_at=None if review is None else round(review, 3),
    )
    return Decided(_left_out(_as_plan(result), unschedulable, retry_at), new_memory)


def review_at(
    rates: list[list[float]],
    peaks: list[list[float]],
    daily: DailyLoad,
    now_s: float,
    rate: float,
    horizon_s: float,
    sizing_window_s: float = PEAK_WINDOW_S,
    minutes: list[list[float]] | None = None,
) -> float | None:
    """When the plan may change with the load as it is now (Unix seconds): the sampler
    wakes a model without traffic only on news, and ageing memory is no news. At once
    (the next figures) while a higher load of the last minutes still holds the plan up
    (the peak floor over a cold start, the trend); when a burst above today's load
    leaves the burst memory; when the daily pattern's forecast changes. None: only a
    change in the figures can change the plan. The headroom for the load's variability
    changes when the last sample that differed from the load now leaves its window
    (``HEADROOM_WINDOW_S``); capacity held for rises that recur (``planning.holding``)
    may go when the first rise above the load now leaves the hour of samples (the
    cheaper pool's pattern) or the rise memory's six hours of ``minutes``."""
    if any(r > rate for t, r in rates if now_s - t <= sizing_window_s):
        return now_s
    moments = [t + BURST_MEMORY_S for t, r in peaks if r > rate]
    if rate > 0:
        moved = [t for t, r in rates if abs(r - rate) > 0.01 * rate]
        if moved:
            moments.append(max(moved) + HEADROOM_WINDOW_S)
    rises = [t for t, r in rates if r > rate]
    if rises:
        moments.append(min(rises) + VARIABILITY_WINDOW_S)
    older = [t for t, r in minutes or [] if r > rate]
    if older:
        # Each minute ages out on its own: looked at every RISE_REVIEW_S at most, so an
        # idle model is not woken each minute for six hours (capacity held that long
        # more, at worst, after the rises that held it are forgotten).
        moments.append(max(min(older) + RISE_MEMORY_S, now_s + RISE_REVIEW_S))
    forecast = next_change_s(daily, now_s, horizon_s)
    if forecast is not None:
        moments.append(forecast)
    return min(moments, default=None)


def _model_rate(live: LiveFigures | None) -> float | None:
    """The rate the last figures say reached the model, response-cache hits taken off."""
    if live is None or live.request_rate is None:
        return None
    return live.request_rate * (1.0 - (live.cache_hit_rate or 0.0))


def _first(result: LivePlan, min_replicas: int) -> Plan | NoPlan:
    """The plan before any traffic figure. The live planner cuts replicas to the budget
    (never over it); before anything serves, a cut below the spec's floor is no plan to
    start from: said as such, with what the cheapest would cost."""
    if result.replicas >= min_replicas:
        return _as_plan(result)
    return NoPlan(f"the cheapest plan is over the budget: {result.reason}", over_budget=True)


def _nowhere(unschedulable: set[str] | frozenset[str]) -> NoPlan:
    names = ", ".join(sorted(unschedulable)) or "none"
    return NoPlan(f"no pool can schedule serving pods (unschedulable: {names})")


def _left_out(
    chosen: Plan | NoPlan,
    unschedulable: set[str] | frozenset[str],
    retry_at: dict[str, float] | None = None,
) -> Plan | NoPlan:
    """The plan, its reason saying which pools it could not use, why, and until when
    (the Decision Event carries it: a move off a pool is never silent)."""
    if isinstance(chosen, NoPlan) or not unschedulable:
        return chosen
    names = ", ".join(sorted(unschedulable))
    until = ", ".join(
        f"{pool} from {time.strftime('%H:%M:%SZ', time.gmtime(at))}"
        for pool, at in sorted((retry_at or {}).items())
        if pool in unschedulable
    )
    return dataclasses.replace(
        chosen,
        reason=f"{chosen.reason}; left out {names}: its serving pods waited for a node "
        "past the pool's timeout" + (f" (tried again: {until})" if until else ""),
    )


def _as_plan(result: LivePlan) -> Plan:
    """The plan alone (the memory goes to ``status.planner``), its p95 finite: JSON, and
    so status, has no infinity."""
    p95 = result.predicted_p95_ms if math.isfinite(result.predicted_p95_ms) else 1e9
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(Plan)}
    return Plan(**(fields | {"predicted_p95_ms": p95}))
