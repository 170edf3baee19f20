"""The first decision: cheapest plan that meets the SLO, never over budget."""

from __future__ import annotations

from lepton_operator.planning import Candidate, NoPlan, Plan, initial_plan
from lepton_operator.planning.table import best_profile, cost_per_1k
from lepton_operator.report import Profile

CPU = Candidate("onnx-int8", "cpu-standard", p95_ms=9.0, throughput_rps=118, hourly_price_usd=0.34)
CPU_SLOW = Candidate("fp32", "cpu-standard", p95_ms=24.0, throughput_rps=45, hourly_price_usd=0.34)
GPU = Candidate("fp16", "gpu-l4", p95_ms=4.9, throughput_rps=1900, hourly_price_usd=0.81)


def plan(*candidates, slo=50.0, **kwargs):
    args = {"min_replicas": 1, "max_replicas": 4} | kwargs
    return initial_plan(list(candidates), slo, **args)


def test_cheapest_pool_meeting_the_slo_wins_at_low_load():
    chosen = plan(CPU, CPU_SLOW, GPU)
    assert isinstance(chosen, Plan)
    assert (chosen.variant, chosen.pool, chosen.replicas) == ("onnx-int8", "cpu-standard", 1)
    assert chosen.slo_met and chosen.within_budget
    assert "cheapest plan meeting p95 50 ms" in chosen.reason


def test_a_tight_slo_forces_the_gpu():
    chosen = plan(CPU, GPU, slo=5.0)
    assert isinstance(chosen, Plan) and chosen.pool == "gpu-l4"


def test_min_throughput_sizes_replicas_and_can_flip_the_pool():
    chosen = plan(CPU, GPU, min_throughput_rps=500)
    # CPU needs ceil(500/118)=5 > max 4 replicas... capped at 4 x 0.34 = 1.36 vs GPU 0.81
    assert isinstance(chosen, Plan) and (chosen.pool, chosen.replicas) == ("gpu-l4", 1)


def test_budget_too_small_for_the_slo_serves_the_fastest_affordable_and_says_so():
    chosen = plan(CPU_SLOW, GPU, slo=10.0, budget_usd=0.5)
    assert isinstance(chosen, Plan)
    assert (chosen.variant, chosen.slo_met, chosen.within_budget) == ("fp32", False, True)
    assert "$0.81/h, over the budget $0.50/h" in chosen.reason


def test_nothing_affordable_is_no_plan():
    chosen = plan(GPU, budget_usd=0.1)
    assert isinstance(chosen, NoPlan) and "over the budget" in chosen.reason


def test_no_candidates_is_no_plan_with_a_reason():
    chosen = plan()
    assert isinstance(chosen, NoPlan) and "no variant passed" in chosen.reason


def test_pinned_replicas_are_kept():
    chosen = plan(CPU, pinned_replicas=3)
    assert isinstance(chosen, Plan) and chosen.replicas == 3 and chosen.hourly_cost_usd == 3 * 0.34


def test_deterministic_tie_break():
    a = Candidate("a", "p", 10, 100, 0.3)
    b = Candidate("b", "p", 10, 100, 0.3)
    assert plan(b, a).variant == plan(a, b).variant == "a"


def test_best_profile_prefers_throughput_within_the_slo():
    profiles = [
        Profile(batchSize=1, p50Ms=5, p95Ms=6, p99Ms=7, throughputRps=150),
        Profile(batchSize=8, p50Ms=40, p95Ms=45, p99Ms=50, throughputRps=180),
        Profile(batchSize=32, p50Ms=150, p95Ms=160, p99Ms=170, throughputRps=200),
    ]
    assert best_profile(profiles, 50).batch_size == 8
    assert best_profile(profiles, 1).batch_size == 1  # none meets: the fastest, to show the gap
    assert cost_per_1k(0.36, 100) == 0.001
    assert cost_per_1k(1.0, 0) is None
