"""Daily seasonality: a step that came at the same time on every recent day is planned
for one cold start before it comes; a one-off burst, or a single day, buys nothing.

Figures as in test_planner: CPU onnx (25 ms, 53 req/s per replica, $0.34/h, 60 s to
provision) against GPU fp16 (2 ms, 1,900 req/s, $0.81/h, 180 s)."""

from __future__ import annotations

from dataclasses import replace

from lepton_operator.bench.replay import Ours, Pool, Scenario, simulate
from lepton_operator.planning.capacity import Capacity
from lepton_operator.planning.planner import PlanInput, PoolState, Serving, plan
from lepton_operator.planning.seasonal import (
    DAY_S,
    SLOT_S,
    DailyLoad,
    expected_load,
    from_status,
    next_change_s,
    observe,
    to_status,
)

CPU = Capacity("onnx", "cpu", base_p95_ms=25.0, max_rps=53.0)
GPU = Capacity("fp16", "gpu", base_p95_ms=2.0, max_rps=1900.0)
POOLS = {
    "cpu": PoolState("cpu", 0.34, provisioning_seconds=60),
    "gpu": PoolState("gpu", 0.81, provisioning_seconds=180),
}
NINE = 9 * 3600.0  # the step comes at 09:00 UTC


def _days(count: int, step_rps: float = 3000.0, quiet_rps: float = 5.0) -> DailyLoad:
    """``count`` days sampled once a minute: quiet, and ``step_rps`` from 09:00 to 10:00."""
    daily = DailyLoad()
    for minute in range(int(count * DAY_S // 60)):
        now = minute * 60.0
        of_day = now % DAY_S
        daily = observe(daily, now, step_rps if NINE <= of_day < NINE + 3600 else quiet_rps)
    return daily


def test_a_slot_forecasts_only_what_every_recent_day_reached() -> None:
    one_day, two_days = _days(1), _days(2)
    morning = 2 * DAY_S + NINE - 120  # day 3, two minutes before the step
    assert expected_load(one_day, morning, 240) == 0.0  # one day is not a pattern
    assert expected_load(two_days, morning, 240) == 3000.0
    assert expected_load(two_days, morning, 60) == 5.0  # the step is beyond the horizon
    assert expected_load(None, morning, 240) == 0.0
    # A burst seen on one of the two days is not expected the next.
    burst = observe(two_days, 2 * DAY_S + 12 * 3600.0, 5000.0)
    burst = observe(burst, 2 * DAY_S + 12 * 3600.0 + SLOT_S, 5.0)
    assert expected_load(burst, 3 * DAY_S + 12 * 3600.0, 60) == 5.0
    # Nor does a minute-long burst within a slot, on every day: the slot's level is
    # its median.
    daily = DailyLoad()
    for day in range(2):
        for minute, rate in enumerate([5.0, 5.0, 5000.0, 5.0, 5.0, 5.0]):
            daily = observe(daily, day * DAY_S + NINE + minute * 60.0, rate)
    assert daily.slots[int(NINE // SLOT_S)] == (5.0, 5.0)


def test_the_forecast_changes_one_cold_start_before_the_step_and_when_it_ends() -> None:
    """An idle model is woken when the pattern's step enters its horizon, not later."""
    two_days = _days(2)
    day3 = 2 * DAY_S
    entering = next_change_s(two_days, day3 + 6 * 3600.0, 240)
    assert entering is not None and abs(entering - (day3 + NINE - 240)) < 0.01
    assert expected_load(two_days, entering, 240) == 3000.0
    ending = next_change_s(two_days, day3 + NINE, 240)
    assert ending is not None and abs(ending - (day3 + NINE + 3600)) < 0.01
    assert expected_load(two_days, ending, 240) == 5.0
    assert next_change_s(_days(1), day3, 240) is None  # one day forecasts nothing
    assert next_change_s(None, day3, 240) is None


def test_the_profile_survives_status_and_forgets_what_is_malformed() -> None:
    daily = _days(2)
    assert from_status(to_status(daily)) == daily
    assert from_status({"slots": [["x", 1]]}) == DailyLoad()
    assert from_status(None) == DailyLoad()
    assert len(to_status(daily)["slots"]) == 288  # type: ignore[arg-type]


def _input(now: float, daily: DailyLoad | None) -> PlanInput:
    return PlanInput(
        capacities=[CPU, GPU],
        pools=POOLS,
        rate_rps=5.0,
        slo_ms=100,
        max_replicas=20,
        now_s=now,
        current=Serving("onnx", "cpu", 1),
        daily=daily,
    )


def test_the_gpu_is_asked_for_one_cold_start_before_a_daily_step() -> None:
    daily = _days(2)
    before = 2 * DAY_S + NINE - 170  # within the L4's 180 s of provisioning
    ahead = plan(_input(before, daily))
    assert ahead is not None
    assert (ahead.pool, ahead.replicas) == ("gpu", 2)
    assert "daily pattern" in ahead.reason and "3000 req/s" in ahead.reason
    # Without the history, or further ahead than a cold start, the quiet load stays on
    # the CPU.
    for quiet in (plan(_input(before, None)), plan(_input(before - 900, daily))):
        assert quiet is not None and (quiet.pool, quiet.replicas) == ("cpu", 1)


def test_replayed_the_third_day_has_no_cold_start_at_the_step() -> None:
    rates = [3000.0 if 9 * 60 <= m % 1440 < 10 * 60 else 5.0 for m in range(3 * 1440)]
    scenario = Scenario(
        rates,
        [replace(CPU, pool="cpu"), GPU],
        [Pool("cpu", 0.34, 60, 40), Pool("gpu", 0.81, 180, 4)],
        slo_ms=100.0,
    )
    run = simulate(scenario, Ours(scenario))
    over = [m for m, p95 in enumerate(run.p95_ms) if p95 > 100.0]
    by_day = [[m for m in over if m // 1440 == day] for day in range(3)]
    assert by_day[0] and by_day[1], "the first two days have no history: the step waits"
    assert by_day[2] == []
