"""The live planner's edges, on MiniLM-like figures: CPU onnx (25 ms, 53 req/s per
replica, $0.34/h) against GPU fp16 (2 ms, 1,900 req/s, $0.81/h)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import replace

import pytest

from lepton_operator.decide import BURST_MEMORY_S, burst_peak, load_trend, remember_peak
from lepton_operator.planning.capacity import Capacity, capacity_from_profiles
from lepton_operator.planning.correction import Scale
from lepton_operator.planning.planner import (
    LivePlan,
    PlanInput,
    PoolState,
    Serving,
    plan,
    trend_ahead,
)
from lepton_operator.report import Profile

CPU = Capacity("onnx", "cpu", base_p95_ms=25.0, max_rps=53.0)
GPU = Capacity("fp16", "gpu", base_p95_ms=2.0, max_rps=1900.0)
POOLS = {
    "cpu": PoolState("cpu", 0.34, provisioning_seconds=60),
    "gpu": PoolState("gpu", 0.81, provisioning_seconds=180),
}


def _input(rate: float, **changes) -> PlanInput:
    base = PlanInput(capacities=[CPU, GPU], pools=POOLS, rate_rps=rate, slo_ms=100, max_replicas=20)
    return replace(base, **changes)


def _plan(rate: float, **changes) -> LivePlan:
    result = plan(_input(rate, **changes))
    assert result is not None
    return result


def test_the_capacity_model_is_monotone_and_bounded() -> None:
    assert CPU.p95_ms(0, 1) == 25.0
    loads = [CPU.p95_ms(rate, 2) for rate in (10, 50, 90, 105)]
    assert loads == sorted(loads) and math.isinf(CPU.p95_ms(106, 2))
    assert CPU.p95_ms(50, 4) < CPU.p95_ms(50, 2)
    # The queueing tail leaves 75 ms of a 100 ms SLO: at most 57% busy per replica.
    assert CPU.replicas_for(100, 100, 1, 20) == 4
    assert CPU.replicas_for(10_000, 100, 1, 20) is None


def test_capacity_uses_only_batch_sizes_whose_own_p95_meets_the_slo() -> None:
    profiles = [
        Profile(batchSize=1, p50Ms=20, p95Ms=25, p99Ms=30, throughputRps=50),
        Profile(batchSize=8, p50Ms=140, p95Ms=160, p99Ms=170, throughputRps=57),
    ]
    assert capacity_from_profiles("onnx", "cpu", profiles, 100).max_rps == 50
    assert capacity_from_profiles("onnx", "cpu", profiles, 200).max_rps == 57


def test_low_load_is_cheapest_on_one_cpu_replica() -> None:
    result = _plan(5)
    assert (result.variant, result.pool, result.replicas) == ("onnx", "cpu", 1)
    assert result.slo_met and result.within_budget and result.hourly_cost_usd == 0.34


def test_at_the_same_price_the_variant_with_more_room_within_the_slo_is_chosen() -> None:
    # Two CPU variants, one replica each at 5 req/s: "quick" answers a lone request
    # faster, "roomy" holds more load within 100 ms before a second replica is needed.
    # Both meet the SLO at one price: the room decides, not the p95 at the load now.
    quick = Capacity("quick", "cpu", base_p95_ms=20.0, max_rps=40.0)
    roomy = Capacity("roomy", "cpu", base_p95_ms=30.0, max_rps=60.0)
    assert quick.p95_ms(5, 1) < roomy.p95_ms(5, 1)
    result = _plan(5, capacities=[quick, roomy])
    assert (result.variant, result.replicas) == ("roomy", 1)
    # Serving the other already, the plan stays: a change must save money.
    serving = Serving("quick", "cpu", 1)
    assert _plan(5, capacities=[quick, roomy], current=serving).variant == "quick"


def test_high_load_moves_to_the_gpu_where_it_is_cheaper() -> None:
    result = _plan(300)
    assert (result.pool, result.replicas) == ("gpu", 1)
    assert "cheapest meeting" in result.reason


def test_over_the_slo_at_any_count_replicas_stop_where_queueing_is_gone() -> None:
    """A lone request slower than the SLO (a correction learned under contention, a
    tight SLO) stays slower at any count: at 0.1 req/s one replica is as fast as twenty;
    under load, replicas are added while they still bring the p95 down."""
    light = _plan(0.1, capacities=[CPU], slo_ms=10)
    assert light.replicas == 1 and not light.slo_met
    heavy = _plan(100, capacities=[CPU], slo_ms=10)
    best = CPU.p95_ms(100, 20)
    assert 2 < heavy.replicas < 20
    assert heavy.predicted_p95_ms <= best * 1.05 < CPU.p95_ms(100, heavy.replicas - 1)


def test_zero_load_keeps_min_replicas_or_scales_to_zero() -> None:
    assert _plan(0).replicas == 1
    # Even when the model says a lone request misses the SLO: replicas would not help.
    slow = _plan(0, capacities=[CPU], slo_ms=10, min_replicas=2)
    assert slow.replicas == 2 and not slow.slo_met
    idle = _plan(0, min_replicas=0)
    assert idle.replicas == 0 and idle.hourly_cost_usd == 0
    # Idle at zero misses nothing; the shorter cold start is kept (the CPU's 60 s, not
    # the L4's 180 s), and what it costs is said: the wait of the next request.
    assert idle.slo_met and idle.pool == "cpu"
    assert "next request waits a cold start of about 60 s" in idle.reason
    slow = replace(CPU, load_seconds=30.0)
    assert "about 90 s" in _plan(0, capacities=[slow], min_replicas=0).reason


def test_min_throughput_keeps_capacity_ready_whatever_the_load() -> None:
    # 100 req/s at a 100 ms SLO take 4 CPU replicas (see above), or one L4 for less.
    assert _plan(0, capacities=[CPU], min_rate_rps=100).replicas == 4
    assert _plan(5, capacities=[CPU], min_rate_rps=100).replicas == 4
    assert _plan(200, capacities=[CPU], min_rate_rps=100).replicas == 7
    assert _plan(0, min_rate_rps=100).pool == "gpu"


def test_load_above_max_replicas_serves_the_most_it_may_and_says_so() -> None:
    result = _plan(50_000, max_replicas=3)
    assert result.replicas == 3 and not result.slo_met
    assert "no option meets" in result.reason


def test_a_budget_too_small_is_never_exceeded_and_names_the_cost_of_the_slo() -> None:
    result = _plan(150, budget_usd=0.70, capacities=[CPU])
    assert result.hourly_cost_usd <= 0.70 and result.replicas == 2
    assert not result.within_budget and not result.slo_met
    assert "cheapest that would: $1.70/h" in result.reason


def test_within_budget_is_false_only_when_the_budget_is_what_misses_the_slo() -> None:
    # Nothing meets the SLO at any price (three replicas at most): the budget is not
    # the cause, and the plan costs far less than it.
    result = _plan(50_000, max_replicas=3, budget_usd=5.0)
    assert not result.slo_met and result.within_budget


def test_replicas_held_through_the_window_are_cut_to_a_lowered_budget() -> None:
    serving = Serving("onnx", "cpu", 6)
    held = _plan(20, capacities=[CPU], current=serving, history=(), now_s=0.0)
    assert held.replicas == 6  # the scale-down window holds them
    cut = _plan(20, capacities=[CPU], current=serving, history=held.history, budget_usd=1.0)
    assert cut.hourly_cost_usd <= 1.0 and cut.replicas == 2 and not cut.within_budget
    assert "cut to the budget" in cut.reason


def test_only_one_pool() -> None:
    result = _plan(300, capacities=[CPU], pools={"cpu": POOLS["cpu"]})
    assert (result.pool, result.replicas) == ("cpu", 10)


def test_a_pool_that_cannot_schedule_or_has_no_room_is_avoided() -> None:
    stuck = {**POOLS, "gpu": replace(POOLS["gpu"], schedulable=False)}
    assert _plan(300, pools=stuck).pool == "cpu"
    full = {**POOLS, "gpu": replace(POOLS["gpu"], max_replicas=0)}
    assert _plan(300, pools=full).pool == "cpu"
    nothing = {"cpu": replace(POOLS["cpu"], schedulable=False), "gpu": stuck["gpu"]}
    assert plan(_input(300, pools=nothing)) is None


def test_a_rising_trend_is_planned_for_one_provisioning_delay_ahead() -> None:
    steady = _plan(40, capacities=[CPU])
    rising = _plan(40, capacities=[CPU], trend_rps_per_s=1.0)  # +60 req/s by the time
    assert rising.replicas > steady.replicas


def test_a_burst_back_to_a_level_seen_within_the_hour_is_planned_for_that_level() -> None:
    # 1,500 req/s and rising at 20 req/s per second: over the L4's 180 s cold start the
    # trend alone says 3,000 (doubling): two L4s. A burst to 1,800 within the hour says
    # this is that burst again: one L4 holds it.
    rising = {"capacities": [GPU], "trend_rps_per_s": 20.0}
    assert _plan(1500, **rising).replicas == 2
    assert _plan(1500, burst_peak_rps=1800.0, **rising).replicas == 1
    # A peak below the load now caps nothing: the trend is a new high.
    assert _plan(1500, burst_peak_rps=1000.0, **rising).replicas == 2


def test_a_burst_back_to_a_level_of_the_rise_memory_is_planned_for_that_level() -> None:
    # The last burst to 1,800 req/s was two hours ago: the burst memory (an hour) has
    # forgotten it, the rise memory's per-minute peaks (six hours) have not. The burst
    # back, rising at 20 req/s per second, rises to that level: one L4, not two.
    rising = {"capacities": [GPU], "trend_rps_per_s": 20.0, "now_s": 4 * 3600.0}
    older = ((2 * 3600.0, 1800.0), (2 * 3600.0 + 60, 400.0))
    assert _plan(1500, older_rates=older, **rising).replicas == 1
    # A level only below the load now is no cap: the trend is a new high.
    lower = ((2 * 3600.0, 1000.0),)
    assert _plan(1500, older_rates=lower, **rising).replicas == 2


def test_a_burst_a_hair_above_a_level_seen_before_has_reached_it() -> None:
    # Two hours ago a burst held 1,650 req/s. Now a quiet quarter hour at about 200
    # req/s, a jump to 1,400, then 1,700: the second sample rises by more than the
    # load's noise (a trend of 5 req/s per second, 900 over the L4's cold start), but
    # it is above the level seen before by less than that noise (how far a sample's
    # rise strays from the usual, at its 95% quantile: 299 req/s). The burst is back at
    # that level: one L4, not a second for a ramp that is not there.
    now = 4 * 3600.0
    quiet = [200.0 + t for t in range(14)]
    recent = tuple((now - (15 - i) * 60.0, r) for i, r in enumerate([*quiet, 1400.0, 1700.0]))
    burst = {
        "capacities": [GPU],
        "now_s": now,
        "recent_rates": recent,
        "trend_rps_per_s": 5.0,
        "burst_peak_rps": 1700.0,
    }
    seen = ((2 * 3600.0, 1650.0), (2 * 3600.0 + 60, 200.0))
    assert trend_ahead(_input(1700.0, older_rates=seen, **burst), lead=180.0) == 0.0
    assert _plan(1700.0, older_rates=seen, **burst).replicas == 1
    # Far above the level seen before, beyond the load's noise, it is a new high.
    lower = ((2 * 3600.0, 1200.0),)
    assert trend_ahead(_input(1700.0, older_rates=lower, **burst), lead=180.0) == 900.0
    assert _plan(1700.0, older_rates=lower, **burst).replicas == 2


def test_a_trend_is_a_rise_over_both_halves_of_its_window() -> None:
    # A ramp of 1 req/s per second, sampled each minute: its slope.
    ramp = [[t, 100.0 + t] for t in (0.0, 60.0, 120.0)]
    assert load_trend(ramp, 120.0) == pytest.approx(1.0)
    # The same rise as a step into a burst, then its level: the jump rises in one half
    # only. End to end it read as 1 req/s per second, 180 extrapolated over an L4's cold
    # start.
    assert load_trend([[0.0, 100.0], [60.0, 220.0], [120.0, 220.0]], 120.0) == 0.0
    assert load_trend([[0.0, 100.0], [60.0, 100.0], [120.0, 220.0]], 120.0) == 0.0
    # A wiggle (down, then up past the start) does not rise in both halves either.
    assert load_trend([[0.0, 100.0], [60.0, 90.0], [120.0, 130.0]], 120.0) == 0.0
    # The smaller half: a ramp that slows is planned at its slower rise.
    assert load_trend([[0.0, 100.0], [60.0, 220.0], [120.0, 250.0]], 120.0) == 0.5
    # Sampled every 15 s (the sampler's default), the halves are split at the middle.
    fine = [[t * 15.0, 100.0 + t * 15.0] for t in range(9)]
    assert load_trend(fine, 120.0) == pytest.approx(1.0)
    # Two samples cannot be told apart from a step: end to end. One: none.
    assert load_trend([[60.0, 100.0], [120.0, 160.0]], 120.0) == 1.0
    assert load_trend([[120.0, 160.0]], 120.0) == 0.0


def test_a_rise_within_the_loads_noise_is_not_extrapolated() -> None:
    # A burst level of 1,700 req/s on one L4 (1,900 at most), with 5% noise from sample
    # to sample, a minute apart; the last sample a wiggle up. Its rise per sample is
    # within what the load does by chance: one L4, not a second for noise.
    level = [1700.0 * (1.05 if t % 2 else 0.95) for t in range(16)]
    samples = tuple((t * 60.0, rate) for t, rate in enumerate(level))
    now = 15 * 60.0
    noisy = {"capacities": [GPU], "now_s": now, "recent_rates": samples}
    assert _plan(level[-1], trend_rps_per_s=1.0, **noisy).replicas == 1
    # The same rise from a flat level is a trend: extrapolated over the cold start.
    flat = tuple((t * 60.0, 1700.0) for t in range(16))
    steady = {**noisy, "recent_rates": flat}
    assert _plan(1700.0, trend_rps_per_s=1.0, **steady).replicas == 2


def test_a_steady_ramp_is_a_trend_from_however_low_it_starts() -> None:
    # Sampled every 15 s as live (the sampler's default), a steady ramp rises by the
    # same each sample: no noise, so its trend is planned over the cold start, from 20
    # req/s as from 2 (whose first ratios between samples, 1.5x and more, are no noise).
    for start in (20.0, 2.0):
        ramp = tuple((t * 15.0, start + (40.0 - start) * t / 60) for t in range(61))
        trend = load_trend([list(sample) for sample in ramp], 900.0)
        assert trend == pytest.approx((40.0 - start) / 900.0)
        ahead = trend_ahead(
            _input(40.0, now_s=900.0, recent_rates=ramp, trend_rps_per_s=trend), lead=60.0
        )
        assert ahead == pytest.approx(trend * 60.0)


def test_observed_latency_corrects_the_model() -> None:
    serving = Serving("onnx", "cpu", 1)
    slow = _plan(30, capacities=[CPU], current=serving, observed_p95_ms=150.0)
    assert slow.correction > 1 and slow.replicas >= 2
    assert "corrected" in slow.reason


def test_scale_down_waits_for_the_window_and_scale_up_does_not() -> None:
    serving = Serving("onnx", "cpu", 4)
    history: tuple = ()
    replicas = []
    for minute in range(8):
        result = _plan(20, capacities=[CPU], current=serving, history=history, now_s=minute * 60.0)
        history, serving = result.history, Serving("onnx", "cpu", result.replicas)
        replicas.append(result.replicas)
    assert replicas[:5] == [4, 4, 4, 4, 4] and replicas[-1] == 1
    up = _plan(300, capacities=[CPU], current=serving, history=history, now_s=600.0)
    assert up.replicas == 10


def test_flapping_load_does_not_flap_the_plan() -> None:
    serving: Serving | None = None
    history: tuple = ()
    seen = []
    for step in range(40):
        rate = 280 if step % 2 else 320  # around the CPU/GPU break-even, every 30 s
        result = _plan(rate, current=serving, history=history, now_s=step * 30.0)
        history = result.history
        serving = Serving(result.variant, result.pool, result.replicas)
        seen.append((result.pool, result.replicas))
    changes = sum(1 for a, b in itertools.pairwise(seen) if a != b)
    assert changes <= 2, seen


def test_a_cheaper_option_must_stay_preferred_for_the_window_before_a_switch() -> None:
    serving = Serving("fp16", "gpu", 1)
    history: tuple = ()
    pools = []
    for minute in range(7):
        result = _plan(10, current=serving, history=history, now_s=minute * 60.0)
        history, serving = result.history, Serving(result.variant, result.pool, result.replicas)
        pools.append(result.pool)
    assert pools[:5] == ["gpu"] * 5 and pools[-1] == "cpu"


def test_an_slo_miss_switches_at_once() -> None:
    serving = Serving("onnx", "cpu", 1)
    result = _plan(900, current=serving, max_replicas=20, pools={**POOLS})
    assert result.pool == "gpu"


def test_a_flat_load_gets_no_headroom_from_its_history() -> None:
    flat = tuple((t * 30.0, 40.0) for t in range(7))
    with_history = _plan(40, now_s=180.0, recent_rates=flat, burst_peak_rps=40.0)
    without = _plan(40, now_s=180.0)
    assert (with_history.pool, with_history.replicas) == (without.pool, without.replicas)
    assert with_history.hourly_cost_usd == without.hourly_cost_usd


def test_each_pool_is_sized_for_the_highest_load_of_its_provisioning_delay() -> None:
    # 100 req/s two minutes ago, 40 now: the GPU (180 s to provision) keeps capacity for
    # it, the CPU (60 s) sizes for what its own delay saw.
    rates = ((60.0, 100.0), (120.0, 40.0), (180.0, 40.0))
    cpu = _plan(40, capacities=[CPU], now_s=180.0, recent_rates=rates)
    assert cpu.replicas == CPU.replicas_for(40, 100, 1, 20)
    slow = {"cpu": replace(POOLS["cpu"], provisioning_seconds=180)}
    held = _plan(40, capacities=[CPU], pools=slow, now_s=180.0, recent_rates=rates)
    assert held.replicas == CPU.replicas_for(100, 100, 1, 20) > cpu.replicas


def test_a_variant_that_loads_slowly_is_sized_for_its_whole_cold_start() -> None:
    # The same rates: a CPU variant whose artifact takes 120 s to load has a 180 s cold
    # start on the 60 s pool, so the peak two minutes ago still counts for it.
    rates = ((60.0, 100.0), (120.0, 40.0), (180.0, 40.0))
    quick = _plan(40, capacities=[CPU], now_s=180.0, recent_rates=rates)
    slow = replace(CPU, load_seconds=120.0)
    loading = _plan(40, capacities=[slow], now_s=180.0, recent_rates=rates)
    assert quick.replicas == CPU.replicas_for(40, 100, 1, 20)
    assert loading.replicas == CPU.replicas_for(100, 100, 1, 20) > quick.replicas


def test_a_cold_start_observed_longer_than_declared_is_planned_for() -> None:
    # The pool says 60 s, but its last pod took 200 s to serve: the peak 120 s ago
    # still counts. One observed shorter than declared changes nothing.
    rates = ((60.0, 100.0), (120.0, 40.0), (180.0, 40.0))
    seen = replace(CPU, observed_cold_start_seconds=200.0)
    assert _plan(40, capacities=[seen], now_s=180.0, recent_rates=rates).replicas == (
        CPU.replicas_for(100, 100, 1, 20)
    )
    quick = replace(CPU, observed_cold_start_seconds=20.0)
    assert _plan(40, capacities=[quick], now_s=180.0, recent_rates=rates).replicas == (
        CPU.replicas_for(40, 100, 1, 20)
    )


def test_the_builders_load_time_reaches_the_capacity() -> None:
    profiles = [Profile(batchSize=1, p50Ms=20, p95Ms=25, p99Ms=30, throughputRps=50)]
    assert capacity_from_profiles("onnx", "cpu", profiles, 100, 12.5).load_seconds == 12.5
    assert capacity_from_profiles("onnx", "cpu", profiles, 100).load_seconds == 0.0


def test_a_recent_burst_keeps_the_pool_that_can_absorb_it() -> None:
    # 20 CPU replicas serve at most 1,060 req/s; a 3,000 req/s burst within the memory
    # keeps the GPU although one CPU replica is cheaper at 5 req/s.
    assert _plan(5).pool == "cpu"
    remembered = _plan(5, burst_peak_rps=3000.0)
    assert remembered.pool == "gpu" and remembered.replicas == 1
    assert "recent burst" in remembered.reason
    # A burst the CPU could keep up with changes nothing.
    assert _plan(5, burst_peak_rps=500.0).pool == "cpu"


def test_a_burst_no_option_can_keep_up_with_prefers_none() -> None:
    assert _plan(5, burst_peak_rps=1e9).pool == "cpu"


def test_the_burst_memory_is_a_small_sliding_maximum() -> None:
    peaks: list[list[float]] = []
    for now, rate in [(0.0, 10.0), (60.0, 3000.0), (120.0, 50.0), (180.0, 40.0)]:
        peaks = remember_peak(peaks, now, rate)
    assert peaks == [[60.0, 3000.0], [120.0, 50.0], [180.0, 40.0]]
    assert burst_peak(peaks, 180.0) == 3000.0
    later = 60.0 + BURST_MEMORY_S + 1
    assert burst_peak(remember_peak(peaks, later, 5.0), later) == 50.0
    assert burst_peak([], 0.0) == 0.0


def test_with_no_option_meeting_the_slo_a_slower_looking_pool_is_kept_on_equal_profiles() -> None:
    """Only the serving pool's prediction carries the observed correction: judged as
    they stand, an equal pool would look faster, win, take the correction, and the
    plan would alternate every pass."""
    twin = replace(CPU, pool="cpu-b")
    pools = {**POOLS, "cpu-b": PoolState("cpu-b", 0.34, provisioning_seconds=60)}
    serving: Serving | None = Serving("onnx", "cpu", 1)
    correction, seen = 1.0, []
    throughput: Mapping[str, Scale] = {}
    for step in range(6):
        result = _plan(
            10,
            capacities=[CPU, twin],
            pools=pools,
            slo_ms=10,  # below both profiles' 25 ms at no load: unmeetable
            max_replicas=2,
            current=serving,
            observed_p95_ms=60.0,
            correction=correction,
            throughput=throughput,
            now_s=step * 30.0,
        )
        assert not result.slo_met
        correction, throughput = result.correction, result.throughput
        serving = Serving(result.variant, result.pool, result.replicas)
        seen.append(result.pool)
    assert seen == ["cpu"] * 6, seen


def test_with_no_option_meeting_the_slo_a_faster_profile_still_wins() -> None:
    faster = Capacity("onnx", "cpu-b", base_p95_ms=15.0, max_rps=80.0)
    pools = {**POOLS, "cpu-b": PoolState("cpu-b", 0.34, provisioning_seconds=60)}
    result = _plan(
        10,
        capacities=[CPU, faster],
        pools=pools,
        slo_ms=10,
        max_replicas=2,
        current=Serving("onnx", "cpu", 1),
    )
    assert (result.pool, result.slo_met) == ("cpu-b", False)


def test_latency_corrects_the_model_only_when_the_planned_replicas_are_ready() -> None:
    from lepton_operator.api.status import LiveFigures
    from lepton_operator.decide import planned_replicas_ready
    from lepton_operator.planning.planner import Serving

    def live(**by_pool: int) -> LiveFigures:
        return LiveFigures(
            time="t", replicas_by_pool={k.replace("_", "-"): v for k, v in by_pool.items()}
        )

    planned = Serving("fp16", "gpu-l4", 2)
    assert planned_replicas_ready(live(gpu_l4=2), planned)
    assert planned_replicas_ready(live(gpu_l4=2, cpu=0), planned)
    assert not planned_replicas_ready(live(gpu_l4=1), planned)  # scaling up
    assert not planned_replicas_ready(live(gpu_l4=3), planned)  # draining
    assert not planned_replicas_ready(live(gpu_l4=2, cpu=3), planned)
    assert planned_replicas_ready(None, planned)  # nothing read yet: nothing says otherwise
    assert planned_replicas_ready(LiveFigures(time="t"), planned)  # nor uncounted


def test_noise_around_a_level_gets_headroom_from_its_quantile_not_its_mean() -> None:
    from lepton_operator.planning.planner import variability_load

    # 15 s samples wiggling 40 <-> 48 req/s: the median of the last cold start is 44,
    # successive samples differ by up to 1.2x, and the plan never sizes above the 48 seen.
    noisy = tuple((t * 15.0, 40.0 if t % 2 else 48.0) for t in range(13))
    now = 180.0
    load = variability_load(_input(44, now_s=now, recent_rates=noisy), lead=60.0)
    assert 44.0 < load <= 48.0
    flat = tuple((t * 15.0, 40.0) for t in range(13))
    assert variability_load(_input(40, now_s=now, recent_rates=flat), lead=60.0) == 40.0
    # Too few samples to tell a spread: none.
    assert variability_load(_input(40, now_s=now, recent_rates=flat[-2:]), lead=60.0) == 0.0
    # A level at the edge of the SLO: the noisy one is planned one replica up, the flat
    # one not (the peak over the cold start alone would have left both at the edge).
    edge = 3 * 53.0 * 0.57  # three CPU replicas near their SLO utilisation
    wiggle = tuple((t * 15.0, edge * (0.93 if t % 2 else 1.07)) for t in range(13))
    steady = tuple((t * 15.0, edge) for t in range(13))
    cpu_only = {"capacities": [CPU], "now_s": now}
    assert (
        _plan(edge, recent_rates=wiggle, **cpu_only).replicas
        > _plan(edge, recent_rates=steady, **cpu_only).replicas
    )


def test_a_step_is_one_ratio_among_many_and_a_burst_caps_the_headroom() -> None:
    from lepton_operator.planning.planner import variability_load

    # Forty, then a burst to 400 for the last minute: sized for what was seen, not 10x.
    burst = tuple((t * 15.0, 40.0 if t < 9 else 400.0) for t in range(13))
    assert variability_load(_input(400, now_s=180.0, recent_rates=burst), lead=60.0) == 400.0


def _move_minutes(rate: float, serving: Serving) -> int:
    """Minutes until the plan leaves ``serving`` at a steady ``rate`` (60 s passes)."""
    history: tuple = ()
    for minute in range(12):
        result = _plan(rate, current=serving, history=history, now_s=minute * 60.0)
        if (result.variant, result.pool) != (serving.variant, serving.pool):
            return minute
        history, serving = result.history, Serving(result.variant, result.pool, result.replicas)
    return 12


def test_a_move_waits_as_long_as_its_saving_takes_to_repay_the_cold_starts_it_risks() -> None:
    from lepton_operator.planning.planner import _Option, switch_wait_s

    # 500 req/s, within the SLO on 17 CPU replicas ($5.78/h), one L4 ($0.81/h) would do:
    # the saving repays the L4's 180 s cold start and the CPU's 60 s back in 99 s.
    serving = Serving("onnx", "cpu", CPU.replicas_for(500, 100, 1, 20) or 0)
    assert serving.replicas == 17
    cpu, gpu = _Option(CPU, 17, 90.0, 17 * 0.34, True), _Option(GPU, 1, 3.0, 0.81, True)
    assert switch_wait_s(_input(500), cpu, gpu) == pytest.approx(
        (180 * 0.81 + 60 * 17 * 0.34) / (17 * 0.34 - 0.81)
    )
    assert _move_minutes(500, serving) == 2  # passes at 0, 60 and 120 s: 120 >= 99
    # One L4 against one CPU replica at 10 req/s saves $0.47/h: the cold starts at
    # stake take 340 s of it, so the scale-down window (300 s) bounds the wait.
    assert _move_minutes(10, Serving("fp16", "gpu", 1)) == 5
    held = plan(_input(10, current=Serving("fp16", "gpu", 1)))
    assert held is not None and held.pool == "gpu" and "preferred for 300 s" in held.reason
    # Nothing saved: never worth the risk.
    assert switch_wait_s(_input(10), cpu, cpu) == math.inf


def test_a_small_models_p95_is_not_written_as_zero() -> None:
    tiny = Capacity("onnx", "cpu", base_p95_ms=0.034, max_rps=20_000.0)
    result = _plan(0, capacities=[tiny])
    assert "predicted p95 0.034 ms" in result.reason, result.reason


def test_the_load_shape_is_read_once_per_input_and_anew_for_a_changed_one() -> None:
    from lepton_operator.planning.planner import load_shape

    noisy = tuple((t * 15.0, 40.0 if t % 2 else 48.0) for t in range(13))
    first = _input(44, now_s=180.0, recent_rates=noisy)
    assert first.shape is first.shape  # cached: every option reads the same figures
    assert first.shape == load_shape(first)
    assert first.shape.ratio_spread is not None and first.shape.headroom_peak_rps == 48.0
    # A changed input (the planner's own replace(), as _daily_note does) is read afresh.
    flat = replace(first, recent_rates=tuple((t * 15.0, 40.0) for t in range(13)))
    assert flat.shape == load_shape(flat) and flat.shape.headroom_peak_rps == 40.0
