"""The first decision, before any traffic figure: the live planner given no traffic.

One planner decides before traffic as after it (issue 23): these tests call the
operator's own ``decide`` with an empty status and no sample, the state of a model
whose first build just finished.
"""

from __future__ import annotations

from typing import Any

from lepton_operator.api.spec import LeptonModelSpec, PoolSpec
from lepton_operator.api.status import LeptonModelStatus, VariantStatus
from lepton_operator.decide import decide
from lepton_operator.planning import NoPlan, Plan
from lepton_operator.planning.table import best_profile, cost_per_1k
from lepton_operator.report import Profile

CPU = ("onnx-int8", "cpu-standard", 9.0, 118.0)
CPU_SLOW = ("fp32", "cpu-standard", 24.0, 45.0)
GPU = ("fp16", "gpu-l4", 4.9, 1900.0)
PRICES = {"cpu-standard": 0.34, "gpu-l4": 0.81, "p": 0.3}


def _spec(slo: float, **fields: Any) -> LeptonModelSpec:
    scaling = {"minReplicas": fields.pop("min_replicas", 1), "maxReplicas": 4}
    if scaling["minReplicas"] == 0:
        scaling["scaleToZero"] = True
    body: dict[str, Any] = {
        "model": {
            "uri": "pvc://models/m",
            "format": "onnx",
            "inputs": [{"name": "x", "dtype": "fp32", "shape": [4]}],
            "outputs": [{"name": "y", "dtype": "fp32", "shape": [2]}],
        },
        "slo": {"p95LatencyMs": slo},
        "scaling": scaling,
    }
    if "min_throughput_rps" in fields:
        body["slo"]["minThroughputRps"] = fields.pop("min_throughput_rps")
    if "budget_usd" in fields:
        body["budget"] = {"maxHourlyUSD": fields.pop("budget_usd")}
    if "replicas" in fields:
        body["replicas"] = fields.pop("replicas")
    assert not fields, fields
    return LeptonModelSpec.model_validate(body)


def plan(*rows: tuple[str, str, float, float], slo: float = 50.0, **fields: Any) -> Plan | NoPlan:
    pools = [
        PoolSpec.model_validate({"name": name, "hourlyPriceUSD": PRICES[name]})
        for name in sorted({pool for _, pool, _, _ in rows} or {"cpu-standard"})
    ]
    accepted = [
        VariantStatus.model_validate(
            {"variant": v, "pool": p, "batchSize": 1, "p95Ms": ms, "throughputRps": rps}
            | {"accepted": True}
        )
        for v, p, ms, rps in rows
    ]
    status = LeptonModelStatus()
    return decide(_spec(slo, **fields), pools, accepted, {}, status, None, 1_000_000.0).plan


def test_cheapest_pool_meeting_the_slo_wins_at_low_load():
    chosen = plan(CPU, CPU_SLOW, GPU)
    assert isinstance(chosen, Plan)
    assert (chosen.variant, chosen.pool, chosen.replicas) == ("onnx-int8", "cpu-standard", 1)
    assert chosen.slo_met and chosen.within_budget
    assert "cheapest meeting p95 50 ms at 0.0 req/s" in chosen.reason


def test_a_tight_slo_forces_the_gpu():
    chosen = plan(CPU, GPU, slo=5.0)
    assert isinstance(chosen, Plan) and chosen.pool == "gpu-l4"


def test_min_throughput_is_planned_as_load_and_can_flip_the_pool():
    """minThroughputRps is capacity kept whatever the load: the first plan sizes for it
    as the live planner does, queueing included (five CPU replicas at 500 req/s would
    run at 85% and miss 50 ms; four cannot keep up at all), so the GPU wins."""
    chosen = plan(CPU, GPU, min_throughput_rps=500)
    assert isinstance(chosen, Plan) and (chosen.pool, chosen.replicas) == ("gpu-l4", 1)
    low = plan(CPU, GPU, min_throughput_rps=100)
    assert isinstance(low, Plan) and (low.pool, low.replicas) == ("cpu-standard", 2)


def test_budget_too_small_for_the_slo_serves_the_fastest_affordable_and_says_so():
    chosen = plan(CPU_SLOW, GPU, slo=10.0, budget_usd=0.5)
    assert isinstance(chosen, Plan)
    assert (chosen.variant, chosen.slo_met, chosen.within_budget) == ("fp32", False, False)
    assert "the budget $0.50/h cannot meet p95 10 ms (cheapest that would: $0.81/h)" in (
        chosen.reason
    )


def test_nothing_affordable_is_no_plan():
    chosen = plan(GPU, budget_usd=0.1)
    assert isinstance(chosen, NoPlan) and "over the budget" in chosen.reason
    assert chosen.over_budget  # WithinBudget=False says so


def test_no_candidates_is_no_plan_with_a_reason():
    chosen = plan()
    assert isinstance(chosen, NoPlan) and "no variant passed" in chosen.reason


def test_pinned_replicas_are_kept():
    chosen = plan(CPU, replicas=3)
    assert isinstance(chosen, Plan) and chosen.replicas == 3 and chosen.hourly_cost_usd == 3 * 0.34


def test_a_model_allowed_to_scale_to_zero_starts_with_one_replica():
    """Like Knative's initial scale: the first replica lets the canary prove the build."""
    chosen = plan(CPU, min_replicas=0)
    assert isinstance(chosen, Plan) and chosen.replicas == 1


def test_deterministic_tie_break():
    a = ("a", "p", 10.0, 100.0)
    b = ("b", "p", 10.0, 100.0)
    first, second = plan(b, a), plan(a, b)
    assert isinstance(first, Plan) and isinstance(second, Plan)
    assert first.variant == second.variant == "a"


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
