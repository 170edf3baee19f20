"""The replay benchmark's mechanics on small hand-computed cases, and its shipped inputs.

Figures used below: one replica of ``v`` answers a lone request in 10 ms and serves at
most 100 req/s; at a 100 ms SLO the queueing tail allows 75% utilisation, so 300 req/s
need 4 replicas. A pool at $0.60/h costs $0.01 per replica-minute.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from lepton_operator.bench.replay import (
    Hpa,
    Keda,
    Observation,
    Ours,
    Pool,
    Scenario,
    Static,
    Target,
    capacities_from_reports,
    optimum,
    parse_pools,
    parse_trace,
    replay,
    simulate,
)
from lepton_operator.planning.capacity import Capacity
from lepton_operator.report import parse_report

ROOT = Path(__file__).resolve().parents[3]
TRACES = ROOT / "e2e" / "traces"

CPU = Pool("cpu", 0.60, provisioning_seconds=120, max_replicas=10)  # Ready 2 minutes later
GPU = Pool("gpu", 1.20, provisioning_seconds=180, max_replicas=4)
V = Capacity("v", "cpu", base_p95_ms=10.0, max_rps=100.0)
W = Capacity("w", "gpu", base_p95_ms=2.0, max_rps=2000.0)
STEP = [10.0] * 10 + [300.0] * 10  # the step arrives at minute 10


def _scenario(rates: list[float] = STEP, **changes) -> Scenario:
    return replace(Scenario(rates, [V], [CPU], slo_ms=100.0), **changes)


@dataclass
class Scripted:
    """Asks for ``plan[minute]`` (the last entry until the next one)."""

    plan: dict[int, Target]
    name: str = "scripted"
    seen: list[Observation] = field(default_factory=list)

    def start(self, rate_rps: float) -> Target:
        return self.plan[0]

    def decide(self, seen: Observation) -> Target:
        self.seen.append(seen)
        return self.plan[max(m for m in self.plan if m <= seen.minute)]


def test_a_reactive_policy_misses_the_slo_for_its_lag_plus_the_provisioning_delay() -> None:
    run = simulate(_scenario(), Hpa(_scenario(), "v", "cpu", "hpa"))
    over = [m for m, p95 in enumerate(run.p95_ms) if p95 > 100]
    # Minute 10 is served by one replica; at 11 the HPA sees 300 req/s and asks for
    # ceil(1 x (300/100)/0.7) = 5, Ready at 13: minutes 10, 11 and 12 are over.
    assert over == [10, 11, 12]
    assert all(math.isinf(run.p95_ms[m]) for m in over)
    assert run.ready["cpu"][10:14] == [1, 1, 1, 5] and run.paid["cpu"][10:12] == [1, 5]


def test_a_minute_over_the_slo_is_a_cold_start_when_what_was_asked_would_have_met_it() -> None:
    run = simulate(_scenario(), Hpa(_scenario(), "v", "cpu", "hpa"))
    # Minute 10: one replica asked for 300 req/s, too few (capacity); 11 and 12: the
    # five asked for would hold it, but are still provisioning (cold starts).
    assert (run.cold_start_minutes(100), run.capacity_minutes(100)) == (2, 1)
    assert optimum(_scenario()).cold_start_minutes(100) == 0


def test_scale_to_zero_releases_the_pool_after_its_cooldown_and_pays_the_cold_start() -> None:
    rates = [20.0] * 3 + [0.0] * 8 + [20.0] * 5
    scenario = _scenario(rates)
    run = simulate(scenario, Hpa(scenario, "v", "cpu", "to-zero", min_replicas=0))
    # Idle from minute 3: at 8 it has seen five idle minutes and goes to zero. Load is
    # back at 11, seen at 12, one replica asked then and Ready at 14.
    assert run.paid["cpu"] == [1] * 8 + [0] * 4 + [1] * 4
    assert [m for m, p95 in enumerate(run.p95_ms) if p95 > 100] == [11, 12, 13]
    assert (run.cold_start_minutes(100), run.capacity_minutes(100)) == (2, 1)
    # One replica always on pays the idle minutes and misses none.
    always_on = simulate(scenario, Hpa(scenario, "v", "cpu", "always-on"))
    assert always_on.paid["cpu"] == [1] * 16 and always_on.over_slo_minutes(100) == 0
    assert run.spend_usd == pytest.approx(always_on.spend_usd - 4 * 0.01)


def test_a_replica_serves_after_its_pool_provisions_it_and_its_variant_loads() -> None:
    slow = replace(V, load_seconds=50.0)  # 120 s + 50 s: Ready 3 minutes after asked
    scenario = _scenario(capacities=[slow])
    assert scenario.lead_minutes("cpu", "v") == 3 and _scenario().lead_minutes("cpu") == 2
    run = simulate(scenario, Hpa(scenario, "v", "cpu", "hpa"))
    assert run.ready["cpu"][10:15] == [1, 1, 1, 1, 5]
    assert (run.cold_start_minutes(100), run.capacity_minutes(100)) == (3, 1)


def test_the_latency_trigger_reacts_only_once_latency_shows() -> None:
    run = simulate(_scenario(), Keda(_scenario(), "v", "cpu", "keda"))
    # It sees the infinite p95 of minute 10 at 11 and doubles to 2 (Ready at 13); the
    # p95 stays infinite while those are pending, so it doubles every minute (4 Ready
    # at 14 hold 300 req/s) and overshoots to the pool's 10: blind to pending replicas.
    assert [m for m, p95 in enumerate(run.p95_ms) if p95 > 100] == [10, 11, 12, 13]
    assert run.paid["cpu"][10:15] == [1, 2, 4, 8, 10]


def test_the_optimum_pays_for_the_lead_time_and_never_misses() -> None:
    run = optimum(_scenario())
    assert run.ready["cpu"] == [1] * 10 + [4] * 10
    # 4 replicas are needed from minute 10 and take 2 minutes: paid from minute 8.
    assert run.paid["cpu"] == [1] * 8 + [4] * 12
    assert run.spend_usd == pytest.approx((8 * 1 + 12 * 4) * 0.01)
    assert run.over_slo_minutes(100) == 0


def test_spend_is_replica_minutes_times_the_hourly_price() -> None:
    static = simulate(_scenario(), Static(Target("v", "cpu", 3), "static"))
    assert static.spend_usd == pytest.approx(3 * 20 * 0.01)
    hpa = simulate(_scenario(), Hpa(_scenario(), "v", "cpu", "hpa"))
    # Paid from the minute asked (11), not from Ready (13).
    assert hpa.spend_usd == pytest.approx((11 * 1 + 9 * 5) * 0.01)


def test_scale_down_is_immediate_and_drops_replicas_not_ready_yet_first() -> None:
    policy = Scripted(
        {0: Target("v", "cpu", 2), 3: Target("v", "cpu", 5), 4: Target("v", "cpu", 3)}
    )
    run = simulate(_scenario([10.0] * 8), policy)
    assert run.paid["cpu"] == [2, 2, 2, 5, 3, 3, 3, 3]
    # The 3 asked at minute 3 are Ready at 5; one survived the cut at 4.
    assert run.ready["cpu"] == [2, 2, 2, 2, 2, 3, 3, 3]
    assert run.plan_changes == 2 and run.switches == 0


def test_a_pool_change_keeps_the_old_replicas_until_the_new_ones_are_ready() -> None:
    scenario = Scenario([50.0] * 10, [V, W], [CPU, GPU], slo_ms=100.0)
    policy = Scripted({0: Target("v", "cpu", 2), 4: Target("w", "gpu", 1)})
    run = simulate(scenario, policy)
    assert run.paid["cpu"] == [2] * 7 + [0] * 3  # drained at 7, when the GPU is Ready
    assert run.paid["gpu"] == [0] * 4 + [1] * 6
    assert run.ready["gpu"] == [0] * 7 + [1] * 3
    assert all(p95 <= 100 for p95 in run.p95_ms)
    assert run.spend_usd == pytest.approx(2 * 7 * 0.01 + 6 * 0.02)
    assert run.switches == 1


def test_policies_see_only_the_past() -> None:
    policy = Scripted({0: Target("v", "cpu", 5)})
    simulate(_scenario(), policy)
    for seen in policy.seen:
        assert seen.past_rates == STEP[: seen.minute]
    assert policy.seen[10].last_p95_ms == pytest.approx(V.p95_ms(300, 5))


def test_ours_is_the_planner_and_moves_pools_with_the_load() -> None:
    # Back on the CPU once the burst (which 10 CPU replicas cannot serve) has left the
    # hour of burst memory, and the CPU has then been preferred for the 5-minute window.
    rates = [5.0] * 30 + [3000.0] * 30 + [5.0] * 80
    scenario = Scenario(rates, [V, W], [CPU, GPU], slo_ms=100.0)
    policy = Ours(scenario)
    run = simulate(scenario, policy)
    assert run.targets[0] == Target("v", "cpu", 1)
    assert run.targets[45].pool == "gpu" and run.targets[-1].pool == "cpu"
    assert run.targets[100].pool == "gpu"  # the burst is remembered for an hour
    assert "recent burst" in policy.reasons[100]
    assert all("cheapest meeting" in r or "holding" in r or "staying" in r for r in policy.reasons)


def test_the_replay_is_deterministic() -> None:
    rates = [5.0 + 40 * (m % 37) for m in range(240)]
    scenario = Scenario(rates, [V, W], [CPU, GPU], slo_ms=100.0, budget_usd=5.0)
    first, second = replay(scenario), replay(scenario)
    assert first.as_json() == second.as_json()
    assert [r.cost_usd for r in first.runs] == [r.cost_usd for r in second.runs]
    names = [s.policy for s in first.summaries]
    assert names == [
        "ours",
        "static-cpu-peak",
        "static-gpu-peak",
        "hpa-cpu",
        "hpa-gpu",
        "keda-cpu",
        "keda-gpu",
        "gpu-to-zero",
        "two-pool-1.1x3m5m",
        "greedy-per-minute",
        "optimum",
    ]


def test_inputs_are_checked() -> None:
    assert parse_trace("minute,requests_per_second\n0,1.5\n1,2\n") == [1.5, 2.0]
    with pytest.raises(ValueError, match="expected 1"):
        parse_trace("minute,requests_per_second\n0,1\n2,1\n")
    with pytest.raises(ValueError, match="malformed"):
        parse_pools("- {name: cpu}\n")


def _generator():
    spec = importlib.util.spec_from_file_location("traces_generate", TRACES / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_traces_and_derived_report_equal_a_rerun() -> None:
    for name, text in _generator().outputs().items():
        assert (TRACES / name).read_text() == text, f"{name} differs from a re-run"


def test_the_shipped_inputs_span_both_regimes() -> None:
    pools = parse_pools((TRACES / "pools.yaml").read_text())
    assert [(p.name, p.hourly_price_usd, p.provisioning_seconds) for p in pools] == [
        ("cpu-standard", 0.34, 60),
        ("gpu-l4", 0.81, 180),
    ]
    reports = [
        parse_report((TRACES / name).read_text())
        for name in ("minilm-cpu-standard.json", "minilm-gpu-l4.derived.json")
    ]
    assert [r.pool for r in reports] == ["cpu-standard", "gpu-l4"]
    capacities = capacities_from_reports(reports, 100.0)
    low_traffic = parse_trace((TRACES / "low-traffic.csv").read_text())
    assert len(low_traffic) == 7 * 1440 and low_traffic.count(0.0) > 7 * 1440 * 0.25
    bursty = parse_trace((TRACES / "bursty.csv").read_text())
    assert len(bursty) == 1440 and sorted(bursty)[720] < 3 and max(bursty) > 3000
    for trace in ("diurnal", "spiky", "step", "ramp"):
        rates = parse_trace((TRACES / f"{trace}.csv").read_text())
        assert len(rates) == 1440
        scenario = Scenario(rates, capacities, pools, slo_ms=100.0)
        low = optimum(replace(scenario, rates=[min(rates)]))
        high = optimum(replace(scenario, rates=[max(rates)]))
        assert low.targets[0].pool == "cpu-standard" and low.targets[0].replicas == 1
        assert high.targets[0].pool == "gpu-l4"


def test_a_move_under_way_corrects_nothing() -> None:
    """While the old pool still serves, the p95 observed is the old pool's: the
    correction of the new one stays as it was."""
    scenario = Scenario([5.0] * 30 + [3000.0] * 30, [V, W], [CPU, GPU], slo_ms=100.0)
    policy = Ours(scenario)
    policy.start(5.0)
    seen = Observation(
        minute=31,
        past_rates=scenario.rates[:31],
        last_p95_ms=400.0,
        current=Target("w", "gpu", 2),
        ready={("v", "cpu"): 1},
    )
    policy.decide(seen)
    assert policy.correction == 1.0
    policy.decide(replace(seen, ready={("w", "gpu"): 2}))
    assert policy.correction > 1.0


def test_a_scale_still_provisioning_corrects_nothing_and_a_settled_one_does() -> None:
    """The p95 of one Ready replica where four are planned is a cold start, not an
    error of the capacity model; once the four serve, the p95 corrects the model."""
    scenario = Scenario([300.0] * 30, [V], [CPU], slo_ms=100.0)

    def correction_after(ready: int) -> float:
        policy = Ours(scenario)
        policy.start(300.0)
        policy.decide(
            Observation(
                minute=12,
                past_rates=scenario.rates[:12],
                last_p95_ms=160.0,
                current=Target("v", "cpu", 4),
                ready={("v", "cpu"): ready},
            )
        )
        return policy.correction

    assert correction_after(1) == 1.0
    assert correction_after(4) > 1.0  # 160 ms observed where 4 replicas predict 100
