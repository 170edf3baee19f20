"""The generated trace families, the two-pool rule and its tuning, the targets' verdict
and the replay with a capacity model that is off."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lepton_operator.bench.families import DAY, bursty, diurnal, plateau, steps, traces
from lepton_operator.bench.replay import (
    Hpa,
    Pool,
    Scenario,
    Summary,
    TwoPool,
    TwoPoolSettings,
    hpa_target,
    optimum,
    p95_of,
    simulate,
    slo_utilisation,
    tune_two_pool,
    verdict,
)
from lepton_operator.planning.capacity import Capacity

CPU = Pool("cpu", 0.60, provisioning_seconds=120, max_replicas=10)
GPU = Pool("gpu", 1.20, provisioning_seconds=180, max_replicas=4)
V = Capacity("v", "cpu", base_p95_ms=10.0, max_rps=100.0)
W = Capacity("w", "gpu", base_p95_ms=2.0, max_rps=2000.0)


def test_families_are_drawn_again_identically_and_differ_by_seed() -> None:
    first, second = traces(), traces()
    assert [t.rates for t in first] == [t.rates for t in second]
    assert len({t.name for t in first}) == len(first)
    by_name = {t.name: t.rates for t in first}
    assert by_name["bursty-cpu-s1"] != by_name["bursty-cpu-s2"]
    assert {t.family for t in first} == {"bursty", "plateau", "steps", "diurnal"}
    assert all(len(t.rates) == DAY and min(t.rates) >= 0 for t in first)


def test_each_shape_is_what_its_family_says() -> None:
    import random

    rng = random.Random(1)
    on_off = bursty(rng, 10.0)
    high = [r for r in on_off if r > 50]
    assert 0.1 < len(high) / DAY < 0.6  # bursts are a part of the day, not all of it
    assert max(on_off) == pytest.approx(100.0, rel=0.25)
    flat = plateau(rng, 1000.0)[60:]
    assert sum(flat) / len(flat) == pytest.approx(1000.0, rel=0.03)
    assert max(flat) > 1100 and min(flat) < 900  # 10% noise
    levels = steps(rng, 6000.0)
    assert max(levels) > 1000 and min(levels) < 200  # across both regimes
    day = diurnal(rng, 60.0)
    assert max(day[700:740]) > 45 and max(day[100:140]) < 5  # peak at 14:00, trough at 02:00


def test_hpa_targets_sit_where_the_capacity_model_meets_the_slo() -> None:
    # base 10 ms, service 10 ms: p95 = 10 + ln(20) x 10 x u / (1 - u) <= 100 at u <= 0.75.
    assert slo_utilisation(V, 100.0) == pytest.approx(0.75, abs=0.002)
    assert hpa_target(V, 100.0) == pytest.approx(0.75 / 1.1, abs=0.002)
    assert hpa_target(W, 100.0) == pytest.approx(0.895, abs=0.001)
    assert hpa_target(replace(W, max_rps=10_000.0), 100.0) == 0.9  # the ceiling
    # 380 req/s: a target of 80% settles on 5 replicas at 76%, over the SLO's 75%; the
    # SLO's own target (68%) on 6.
    scenario = Scenario([380.0] * 20, [V], [CPU], slo_ms=100.0)
    slo_target = Hpa(scenario, "v", "cpu", "hpa", target_utilisation=hpa_target(V, 100.0))
    run = simulate(scenario, slo_target)
    assert run.ready["cpu"][-1] == 6 and run.over_slo_minutes(100) == 0
    loose = simulate(scenario, Hpa(scenario, "v", "cpu", "hpa", target_utilisation=0.8))
    assert loose.ready["cpu"][-1] == 5 and loose.over_slo_minutes(100) == 20


def test_the_two_pool_rule_holds_the_dearest_choice_of_its_window() -> None:
    rates = [10.0] * 10 + [3000.0] * 3 + [10.0] * 20
    scenario = Scenario(rates, [V, W], [CPU, GPU], slo_ms=100.0)
    run = simulate(scenario, TwoPool(scenario, "two-pool", TwoPoolSettings(1.1, 3, 5)))
    gpu_paid = [m for m, n in enumerate(run.paid["gpu"]) if n]
    # Seen at 11 and chosen while a minute of the last 3 was a burst (to 15), held 5
    # minutes more (to 19); the CPU replica asked at 20 is Ready at 22: the L4 drains then.
    assert gpu_paid[0] == 11 and gpu_paid[-1] == 21
    assert run.paid["gpu"][25:] == [0] * 8


def test_tuning_picks_the_cheapest_setting_meeting_the_bar_over_the_family() -> None:
    # Bursts recurring within 8 minutes: holding longer is what meets the SLO.
    rates = ([10.0] * 4 + [3000.0] * 4) * 100
    family = [Scenario(rates, [V, W], [CPU, GPU], slo_ms=100.0)]
    family.append(replace(family[0], rates=rates[3:] + rates[:3]))
    grid = (TwoPoolSettings(1.1, 1, 1), TwoPoolSettings(1.1, 1, 10), TwoPoolSettings(2.0, 1, 10))
    chosen, rows = tune_two_pool(family, grid)
    assert [r["chosen"] for r in rows].count(True) == 1
    meeting = [r for r in rows if r["meanWithinSLOShare"] >= 0.99]
    assert meeting, rows
    best = min(meeting, key=lambda r: r["meanSpendVsOptimum"])
    assert (chosen.headroom, chosen.lookback, chosen.hold) == (
        best["headroom"],
        best["lookbackMinutes"],
        best["holdMinutes"],
    )
    assert rows[0]["meanWithinSLOShare"] < 0.99  # releasing at once misses the returns


def _summary(policy: str, spend: float, over: float) -> Summary:
    return Summary(policy, spend, spend / 10.0, over, 0, 0, 0, 0, 0)


def test_the_verdict_names_what_missed() -> None:
    rows = [
        _summary("ours", 11.0, 0.005),
        _summary("hpa", 12.0, 0.0),
        _summary("two-pool", 10.5, 0.02),
        _summary("greedy-per-minute", 10.2, 0.0),
        _summary("optimum", 10.0, 0.0),
    ]
    assert verdict(rows)["met"]
    rows[2] = _summary("two-pool", 10.5, 0.005)  # as good, and cheaper
    assert verdict(rows)["cheaperPeersAtSameOrBetterSLO"] == ["two-pool"]
    rows[1] = _summary("hpa", 9.0, 0.0)  # every minute within the SLO below the optimum
    assert verdict(rows)["cheaperThanOptimumWithEveryMinuteWithinSLO"] == ["hpa"]
    rows = [_summary("ours", 11.0, 0.02), _summary("optimum", 10.0, 0.0)]
    assert not verdict(rows)["sloWithinBar"]


def test_a_capacity_model_off_changes_the_world_not_the_plan() -> None:
    scenario = Scenario([300.0] * 10, [V], [CPU], slo_ms=100.0)
    slower = replace(scenario, model_error=0.2)  # the model says 20% more than is served
    ready = {("v", "cpu"): 4}
    assert p95_of(scenario, ready, 300.0) <= 100.0 < p95_of(slower, ready, 300.0)
    assert slower.capacity(("v", "cpu")) == V
    assert slower.true_capacity(("v", "cpu")).max_rps == pytest.approx(100.0 / 1.2)
    # The optimum knows the world: it pays for the replicas the slower world needs.
    world = slower.true_capacity(("v", "cpu"))
    assert world.replicas_for(300.0, 100.0, 1, 10) == 6 and V.replicas_for(300.0, 100.0, 1, 10) == 4
    assert optimum(slower).ready["cpu"][0] == 6 and optimum(scenario).ready["cpu"][0] == 4
    assert optimum(slower).over_slo_minutes(100) == 0


def test_the_committed_family_tables_are_the_committed_json_s() -> None:
    import json
    from pathlib import Path

    from lepton_operator.bench.__main__ import markdown

    bench = Path(__file__).resolve().parents[3] / "docs" / "bench"
    summary = json.loads((bench / "replay-families.json").read_text())
    assert (bench / "replay-families.md").read_text() == markdown(summary)
    # Every trace of every family is there, each with the optimum as its yardstick.
    assert summary["traceCount"] == len(summary["traces"]) == 7 + len(traces())
    for trace in summary["traces"]:
        best = next(p for p in trace["policies"] if p["policy"] == "optimum")
        assert best["spendVsOptimum"] == 1.0 and best["overSLOShare"] <= 0.0
