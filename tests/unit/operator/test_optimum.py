"""The replay's offline optimum (``bench.optimum``) against brute force on small cases.

Small pools keep the enumeration exhaustive: a CPU pool of up to 2 replicas of one
variant, a GPU pool of 1 replica of either of two variants; traces of 4 to 5 minutes,
chosen so holding, releasing, mixing pools and a variant change each pay off somewhere.
"""

from __future__ import annotations

import random

import pytest

from lepton_operator.bench.optimum import brute_force, schedule_cost, solve
from lepton_operator.bench.replay import (
    Pool,
    Scenario,
    Static,
    Target,
    greedy_per_minute,
    optimum,
    simulate,
)
from lepton_operator.planning.capacity import Capacity

CPU = Pool("cpu", 0.60, provisioning_seconds=120, max_replicas=2)
GPU = Pool("gpu", 1.50, provisioning_seconds=180, max_replicas=1)
V = Capacity("v", "cpu", base_p95_ms=10.0, max_rps=100.0)
W = Capacity("w", "gpu", base_p95_ms=2.0, max_rps=400.0)
X = Capacity("x", "gpu", base_p95_ms=40.0, max_rps=900.0)


def _scenario(rates: list[float], budget: float | None = None) -> Scenario:
    return Scenario(rates, [V, W, X], [CPU, GPU], slo_ms=100.0, budget_usd=budget)


CASES = [
    [10.0, 10.0, 10.0, 10.0],  # flat: one CPU replica
    [10.0, 150.0, 10.0, 150.0, 10.0],  # a lull shorter than the cold start: hold
    [10.0, 10.0, 10.0, 10.0, 500.0],  # a late step: GPU asked for 3 minutes ahead
    [200.0, 10.0, 10.0, 10.0, 10.0],  # release at once
    [10.0, 600.0, 10.0, 10.0],  # beyond the pools apart: CPU and GPU together
    [0.0, 0.0, 5.0, 0.0],  # idle minutes still keep the floor of one replica
    [10.0, 2000.0, 10.0, 10.0],  # no fleet can: the fastest, and the minute counts over
]


@pytest.mark.parametrize("rates", CASES)
def test_the_dynamic_programme_finds_the_brute_force_minimum(rates: list[float]) -> None:
    scenario = _scenario(rates)
    schedule = solve(scenario)
    assert schedule.cost_usd == pytest.approx(brute_force(scenario))
    assert schedule_cost(scenario, schedule.fleets) == pytest.approx(schedule.cost_usd)


def test_the_minimum_holds_on_random_small_traces_and_budgets() -> None:
    rng = random.Random(25)
    for _ in range(12):
        rates = [rng.choice([0.0, 10.0, 90.0, 150.0, 450.0, 700.0]) for _ in range(4)]
        budget = rng.choice([None, 1.5, 2.0])
        scenario = _scenario(rates, budget)
        assert solve(scenario).cost_usd == pytest.approx(brute_force(scenario)), (rates, budget)


def test_a_short_lull_is_held_and_a_long_one_released() -> None:
    # 150 req/s need 2 CPU replicas (75% utilisation at most); 10 need one.
    short = optimum(_scenario([10.0, 150.0, 10.0, 150.0, 10.0]))
    # The second replica is kept through minute 2 (a lull of one minute, its cold start
    # two); asked for at minute 1, within the first cold start, it is paid from minute 0.
    assert short.ready["cpu"] == [1, 2, 2, 2, 1]
    assert short.paid["cpu"] == [2, 2, 2, 2, 1]
    long = optimum(_scenario([10.0, 150.0] + [10.0] * 4 + [150.0]))
    assert long.ready["cpu"] == [1, 2, 1, 1, 1, 1, 2]
    assert long.paid["cpu"] == [2, 2, 1, 1, 2, 2, 2]  # released, asked again 2 minutes ahead


def test_the_run_is_paid_as_the_schedule_costs_and_meets_the_slo() -> None:
    scenario = _scenario([10.0] * 8 + [500.0, 500.0, 10.0])
    run = optimum(scenario)
    assert run.spend_usd == pytest.approx(solve(scenario).cost_usd)
    assert run.over_slo_minutes(100) == 0
    # The GPU serves from minute 8 and was paid from minute 5, its 3-minute cold start;
    # it is kept for the last minute (cheaper than a CPU replica's 2-minute cold start
    # plus its minute), and the CPU replica leaves once the GPU serves.
    assert run.ready["gpu"] == [0] * 8 + [1, 1, 1]
    assert run.paid["gpu"] == [0] * 5 + [1] * 6
    assert run.paid["cpu"] == [1] * 8 + [0] * 3
    # With a short prefix the GPU from the start is cheaper than CPU plus its cold start.
    early = optimum(_scenario([10.0] * 4 + [500.0]))
    assert early.ready["gpu"] == [1] * 5 and early.paid["cpu"] == [0] * 5


def test_no_schedule_meeting_the_slo_throughout_is_cheaper() -> None:
    rng = random.Random(7)
    rates = [max(0.0, 120 + rng.gauss(0, 60)) for _ in range(60)]
    scenario = _scenario(rates)
    best = optimum(scenario)
    greedy = greedy_per_minute(scenario)
    assert best.spend_usd <= greedy.spend_usd + 1e-9
    for target in (Target("v", "cpu", 2), Target("w", "gpu", 1), Target("x", "gpu", 1)):
        static = simulate(scenario, Static(target, "static"))
        if static.over_slo_minutes(100) == 0:
            assert best.spend_usd <= static.spend_usd + 1e-9
